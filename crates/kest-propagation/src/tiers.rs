//! The three passport tiers of SPEC §1.5: inline, compressed and claim check.

use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use kest_canon::Sha256Digest;
use kest_passport::{EntryHash, Limits, Passport};

use crate::{Baggage, PropagationError};

/// Baggage key of an inline passport (its JSON).
pub const KEY_PASSPORT: &str = "kest.passport";
/// Baggage key of a compressed passport (padded base64url of zlib).
pub const KEY_PASSPORT_Z: &str = "kest.passport_z";
/// Baggage key of a claim-check id.
pub const KEY_CLAIM_CHECK: &str = "kest.claim_check";
/// Baggage key of the chain tip (hash of the last entry).
pub const KEY_CHAIN_TIP: &str = "kest.chain_tip";
/// Baggage key of the end user.
pub const KEY_USER: &str = "kest.user";
/// Baggage key of the agent.
pub const KEY_AGENT: &str = "kest.agent";
/// Baggage key of the task.
pub const KEY_TASK: &str = "kest.task";
/// Baggage key of the bearer token.
pub const KEY_JWT: &str = "kest.jwt";
/// Prefix of claim-check keys in the store: `kest.claim.<id>`.
pub const CLAIM_KEY_PREFIX: &str = "kest.claim.";
/// Size above which a passport is compressed, then sent by claim check. Default 4096.
pub const DEFAULT_INLINE_THRESHOLD: usize = 4096;

/// zlib at level 1, then base64url with `=` padding: the Python package's
/// `kest.passport_z`. Level 1 is several times faster than the default for a few percent
/// more bytes.
#[must_use]
pub fn compress_passport(json: &str) -> String {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(json.len() / 2), Compression::new(1));
    // Writing into a Vec cannot fail.
    let compressed = encoder
        .write_all(json.as_bytes())
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    kest_canon::b64url_encode_padded(&compressed)
}

/// Reverses [`compress_passport`], accepting padded or unpadded base64url, and refusing
/// to inflate more than `max_bytes` (a small compressed value can expand enormously).
///
/// # Errors
/// [`PropagationError::Compressed`].
pub fn decompress_passport(value: &str, max_bytes: usize) -> Result<String, PropagationError> {
    let compressed =
        kest_canon::b64url_decode(value.trim(), "kest.passport_z").map_err(|error| {
            PropagationError::Compressed {
                reason: error.to_string(),
            }
        })?;
    let mut inflated = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    ZlibDecoder::new(compressed.as_slice())
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|error| PropagationError::Compressed {
            reason: error.to_string(),
        })?;
    if inflated.len() > max_bytes {
        return Err(PropagationError::Compressed {
            reason: format!("inflates past the limit of {max_bytes} bytes"),
        });
    }
    String::from_utf8(inflated).map_err(|_| PropagationError::Compressed {
        reason: "inflates to text that is not UTF-8".into(),
    })
}

/// The passport members found in inbound baggage, before any is chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundPassport {
    /// `kest.chain_tip` as sent.
    pub chain_tip: Option<String>,
    /// `kest.passport`.
    pub inline: Option<String>,
    /// `kest.passport_z`.
    pub compressed: Option<String>,
    /// `kest.claim_check`.
    pub claim_check: Option<String>,
}

impl InboundPassport {
    /// Collects the passport members of `baggage`.
    #[must_use]
    pub fn from_baggage(baggage: &Baggage) -> Self {
        Self {
            chain_tip: baggage.get(KEY_CHAIN_TIP).map(str::to_owned),
            inline: baggage.get(KEY_PASSPORT).map(str::to_owned),
            compressed: baggage.get(KEY_PASSPORT_Z).map(str::to_owned),
            claim_check: baggage.get(KEY_CLAIM_CHECK).map(str::to_owned),
        }
    }

    /// Whether any passport member or a chain tip is present.
    #[must_use]
    pub const fn is_present(&self) -> bool {
        self.chain_tip.is_some()
            || self.inline.is_some()
            || self.compressed.is_some()
            || self.claim_check.is_some()
    }

    /// The announced chain tip, when it is a well-formed entry hash.
    #[must_use]
    pub fn tip(&self) -> Option<EntryHash> {
        self.chain_tip
            .as_deref()
            .and_then(|tip| Sha256Digest::from_hex(tip.trim()).ok())
    }

    /// Picks the passport to continue from.
    ///
    /// `claimed` is the passport JSON the caller redeemed `claim_check` for, if it did.
    /// Every member is decoded; one that does not decode never masks one that does. With a
    /// chain tip, the passport must end at it; without one, the longest wins. A chain tip
    /// with no readable passport is an error: the chain must never silently restart.
    ///
    /// # Errors
    /// [`PropagationError::TipWithoutPassport`], [`PropagationError::TipMismatch`],
    /// [`PropagationError::NoClaimStore`], or the decoding error of the only member.
    pub fn choose(
        &self,
        claimed: Option<&str>,
        limits: &Limits,
    ) -> Result<Option<Passport>, PropagationError> {
        let mut decoded = Vec::new();
        let mut first_error = None;
        let mut record = |result: Result<Passport, PropagationError>| match result {
            Ok(passport) => decoded.push(passport),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        };
        let decode = |key: &'static str, json: &str| {
            Passport::decode(json, limits)
                .map_err(|source| PropagationError::Passport { key, source })
        };
        if let Some(json) = &self.inline {
            record(decode(KEY_PASSPORT, json));
        }
        if let Some(value) = &self.compressed {
            record(
                decompress_passport(value, limits.max_bytes)
                    .and_then(|json| decode(KEY_PASSPORT_Z, &json)),
            );
        }
        match (&self.claim_check, claimed) {
            (Some(_), Some(json)) => record(decode(KEY_CLAIM_CHECK, json)),
            (Some(id), None) => record(Err(PropagationError::NoClaimStore { id: id.clone() })),
            (None, _) => {}
        }
        match (&self.chain_tip, self.tip()) {
            (Some(_), Some(tip)) => {
                if decoded.is_empty() && first_error.is_none() {
                    return Err(PropagationError::TipWithoutPassport { tip: tip.to_hex() });
                }
                if let Some(found) = decoded.into_iter().find(|p| p.tip_hash() == Some(tip)) {
                    return Ok(Some(found));
                }
                Err(first_error.unwrap_or(PropagationError::TipMismatch { tip: tip.to_hex() }))
            }
            (Some(text), None)
                if text.trim() == "0" && decoded.is_empty() && first_error.is_none() =>
            {
                // The Python package announces an empty chain as tip "0".
                Ok(None)
            }
            (Some(text), None) => Err(PropagationError::TipWithoutPassport {
                tip: text.chars().take(80).collect(),
            }),
            (None, _) => match decoded.into_iter().max_by_key(Passport::len) {
                Some(passport) => Ok(Some(passport)),
                None => first_error.map_or(Ok(None), Err),
            },
        }
    }
}

/// The store key under which a claim check's passport is kept: `kest.claim.<id>`.
#[must_use]
pub fn claim_store_key(id: &str) -> String {
    format!("{CLAIM_KEY_PREFIX}{id}")
}
