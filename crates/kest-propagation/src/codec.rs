//! Writing a flow into outbound baggage and restoring one from inbound baggage.

use std::sync::Arc;
use std::time::Duration;

use kest_passport::{Limits, Passport};

use crate::ambient::Caller;
use crate::claims::{ClaimStore, DEFAULT_CLAIM_TTL};
use crate::ingress::Ingress;
use crate::keys;
use crate::tiers::{
    DEFAULT_INLINE_THRESHOLD, InboundPassport, TierChoice, choose_tier, choose_tier_past_inline,
    claim_store_key,
};
use crate::{Baggage, PropagationError};

/// Which tier a passport went out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaggageTier {
    /// `kest.passport`: the JSON.
    Inline,
    /// `kest.passport_z`: zlib and padded base64url.
    Compressed,
    /// `kest.claim_check`: an id; the JSON waits in the claim store.
    ClaimCheck,
}

/// Encodes passports into baggage, and decodes and verifies them back: inline up to the
/// threshold, then compressed, then by claim check.
///
/// Inbound passports are verified as set by [`PassportCodec::ingress`]: by default
/// against no key at all, so that a service which has not said whom it trusts refuses
/// every passport it is sent.
#[derive(Debug, Clone)]
pub struct PassportCodec {
    threshold: usize,
    inline: bool,
    store: Option<Arc<dyn ClaimStore>>,
    ttl: Duration,
    limits: Limits,
    ingress: Ingress,
}

impl Default for PassportCodec {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_INLINE_THRESHOLD,
            inline: true,
            store: None,
            ttl: DEFAULT_CLAIM_TTL,
            limits: Limits::default(),
            ingress: Ingress::default(),
        }
    }
}

impl PassportCodec {
    /// Inline up to 4096 bytes, then compressed, and no claim-check store: a passport too
    /// large for both is an error until [`PassportCodec::store`] is set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The largest passport (JSON, or compressed text) sent in a header.
    #[must_use]
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Whether small passports may go inline, as percent-encoded JSON in `kest.passport`
    /// (the default). Off, they go compressed: `kest.passport_z` is base64url, which W3C
    /// baggage carries without percent-encoding, so a peer that reads baggage values
    /// without percent-decoding them reads it as sent. The Python package's
    /// `KestMiddleware` is such a peer: it takes an inline member's percent-encoded JSON
    /// for an empty passport. Turn the inline tier off for services that call it.
    /// Reading is unaffected: every tier is always accepted.
    #[must_use]
    pub const fn inline_tier(mut self, allowed: bool) -> Self {
        self.inline = allowed;
        self
    }

    /// Where passports too large for a header go, and where claim checks are redeemed.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn ClaimStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How long a claimed passport is kept (default 300 s).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The limits inbound passports are decoded under.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How inbound passports are verified: the keys trusted, the verified-entry cache.
    #[must_use]
    pub fn ingress(mut self, ingress: Ingress) -> Self {
        self.ingress = ingress;
        self
    }

    /// The inbound verification settings.
    #[must_use]
    pub const fn ingress_config(&self) -> &Ingress {
        &self.ingress
    }

    /// Writes `passport` and `caller` into `baggage`, replacing any Kest members already
    /// there and keeping everything else. The chain tip is always written (`0` for an
    /// empty passport, as the Python package does).
    ///
    /// # Errors
    /// [`PropagationError::NoClaimStore`] when the passport is too large for a header and
    /// no store is configured (it is never dropped silently), or a store error.
    pub async fn write(
        &self,
        baggage: &mut Baggage,
        passport: &Passport,
        caller: &Caller,
    ) -> Result<Option<BaggageTier>, PropagationError> {
        for key in keys::ALL {
            baggage.remove(key);
        }
        let tier = if passport.is_empty() {
            baggage.set(keys::CHAIN_TIP, "0")?;
            None
        } else {
            let json = passport.to_json();
            let choice = if self.inline {
                choose_tier(&json, self.threshold)
            } else {
                choose_tier_past_inline(&json, self.threshold)
            };
            let tier = match choice {
                TierChoice::Inline => {
                    baggage.set(keys::PASSPORT, json)?;
                    BaggageTier::Inline
                }
                TierChoice::Compressed(compressed) => {
                    baggage.set(keys::PASSPORT_Z, compressed)?;
                    BaggageTier::Compressed
                }
                TierChoice::ClaimCheck { .. } => {
                    let id = uuid::Uuid::new_v4().to_string();
                    let store = self
                        .store
                        .as_ref()
                        .ok_or_else(|| PropagationError::NoClaimStore { id: id.clone() })?;
                    let stored = store.put(&claim_store_key(&id), &json, self.ttl).await;
                    crate::metrics::claim_check(
                        "put",
                        if stored.is_ok() { "stored" } else { "error" },
                    );
                    stored?;
                    baggage.set(keys::CLAIM_CHECK, id)?;
                    BaggageTier::ClaimCheck
                }
            };
            if let Some(tip) = passport.tip_hash() {
                baggage.set(keys::CHAIN_TIP, tip.to_hex())?;
            }
            Some(tier)
        };
        let values = [
            (keys::USER, &caller.user),
            (keys::AGENT, &caller.agent),
            (keys::TASK, &caller.task),
            (keys::JWT, &caller.jwt),
        ];
        for (key, value) in values {
            if let Some(value) = value {
                baggage.set(key, value.clone())?;
            }
        }
        Ok(tier)
    }

    /// Reads the passport and caller from inbound `baggage`: every tier, the claim check
    /// redeemed from the store, and the passport verified as [`PassportCodec::ingress`]
    /// says. `None` when no passport was sent.
    ///
    /// # Errors
    /// A passport that does not verify (the cause names the member, the entry and what
    /// failed), a chain tip whose passport cannot be read, a claim check with no store or
    /// not in it: the chain never silently restarts, and never continues from lineage
    /// nobody checked.
    pub async fn read(
        &self,
        baggage: &Baggage,
    ) -> Result<(Option<Passport>, Caller), PropagationError> {
        let inbound = InboundPassport::from_baggage(baggage);
        // A claim that is not in the store leaves the other members to decide; only if none
        // of them is the passport does the missing claim become the error.
        let mut missing = None;
        let claimed = match (&inbound.claim_check, &self.store) {
            (Some(id), Some(store)) => {
                let found = store.get(&claim_store_key(id), self.limits.max_bytes).await;
                crate::metrics::claim_check(
                    "get",
                    match &found {
                        Ok(Some(_)) => "found",
                        Ok(None) => "missing",
                        Err(_) => "error",
                    },
                );
                let found = found.inspect_err(|error| {
                    if matches!(
                        error,
                        PropagationError::ClaimTooLarge { .. }
                            | PropagationError::ClaimUnreadable { .. }
                    ) {
                        crate::metrics::verification_failed(error.kind());
                    }
                })?;
                if found.is_none() {
                    missing = Some(kest_canon::escape_untrusted(id, 80));
                }
                found
            }
            _ => None,
        };
        let passport = self
            .ingress
            .admit(&inbound, claimed.as_deref(), &self.limits)
            .await
            .map_err(|error| match (error, missing) {
                (PropagationError::NoClaimStore { .. }, Some(id)) => {
                    PropagationError::ClaimNotFound { id }
                }
                (error, _) => error,
            })?;
        let value = |key: &str| {
            baggage
                .get(key)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let caller = Caller {
            user: value(keys::USER),
            agent: value(keys::AGENT),
            task: value(keys::TASK),
            jwt: value(keys::JWT),
        };
        Ok((passport, caller))
    }
}
