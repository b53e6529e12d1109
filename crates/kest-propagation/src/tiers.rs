//! The three passport tiers of the [baggage tiers](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#baggage): inline, compressed and claim check.

use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use kest_canon::Sha256Digest;
use kest_passport::{
    EntryHash, Limits, Passport, UnverifiedPassport, VerificationReport, Verifier,
};

use crate::keys;
use crate::{Baggage, PropagationError};

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

/// Where a passport's wire text goes, by size ([`choose_tier`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierChoice {
    /// `kest.passport`: the text fits as it is.
    Inline,
    /// `kest.passport_z`: the compressed text fits.
    Compressed(String),
    /// Neither fits: the text belongs in a claim store. `compressed` is the compressed
    /// text, for writers that must send something without a store.
    ClaimCheck {
        /// The compressed text that did not fit.
        compressed: String,
    },
}

/// The tier rule every Kest runtime follows: inline when the text is at most `threshold`
/// bytes, else compressed when that is at most `threshold`, else by claim check.
///
/// ```
/// use kest_propagation::{TierChoice, choose_tier};
///
/// assert_eq!(choose_tier("[]", 4096), TierChoice::Inline);
/// let long = format!("[\"{}\"]", "a".repeat(5000));
/// assert!(matches!(choose_tier(&long, 4096), TierChoice::Compressed(_)));
/// assert!(matches!(choose_tier(&long, 10), TierChoice::ClaimCheck { .. }));
/// ```
#[must_use]
pub fn choose_tier(json: &str, threshold: usize) -> TierChoice {
    if json.len() <= threshold {
        return TierChoice::Inline;
    }
    choose_tier_past_inline(json, threshold)
}

/// [`choose_tier`] for a writer that never sends the inline tier: compressed when that
/// is at most `threshold` bytes, else by claim check, however small the text.
///
/// ```
/// use kest_propagation::{TierChoice, choose_tier_past_inline};
///
/// assert!(matches!(choose_tier_past_inline("[]", 4096), TierChoice::Compressed(_)));
/// assert!(matches!(choose_tier_past_inline("[]", 2), TierChoice::ClaimCheck { .. }));
/// ```
#[must_use]
pub fn choose_tier_past_inline(json: &str, threshold: usize) -> TierChoice {
    let compressed = compress_passport(json);
    if compressed.len() <= threshold {
        TierChoice::Compressed(compressed)
    } else {
        TierChoice::ClaimCheck { compressed }
    }
}

/// A passport's entries as opaque strings, the way the Python package's `BaggageManager`
/// carries them: nothing inside an entry is read. Its tip is the SHA-256 of the last
/// string, which for a real passport is the last entry's hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawPassport(pub Vec<String>);

impl Chain for RawPassport {
    fn tip_hash(&self) -> Option<EntryHash> {
        self.0
            .last()
            .map(|entry| kest_canon::sha256(entry.as_bytes()))
    }
    fn holds(&self, hash: &EntryHash) -> bool {
        self.0
            .iter()
            .any(|entry| kest_canon::sha256(entry.as_bytes()) == *hash)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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

/// What `kest.chain_tip` announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnouncedTip {
    /// No `kest.chain_tip` member.
    Absent,
    /// `0`: an empty chain (the Python package sends this before the first entry).
    Empty,
    /// The hash of the last entry.
    Hash(EntryHash),
}

/// A passport (verified or not) as the member choice needs to see it.
trait Chain {
    fn tip_hash(&self) -> Option<EntryHash>;
    fn holds(&self, hash: &EntryHash) -> bool;
    fn is_empty(&self) -> bool;
}

impl Chain for Passport {
    fn tip_hash(&self) -> Option<EntryHash> {
        Self::tip_hash(self)
    }
    fn holds(&self, hash: &EntryHash) -> bool {
        self.find(hash).is_some()
    }
    fn is_empty(&self) -> bool {
        Self::is_empty(self)
    }
}

impl Chain for UnverifiedPassport {
    fn tip_hash(&self) -> Option<EntryHash> {
        Self::tip_hash(self)
    }
    fn holds(&self, hash: &EntryHash) -> bool {
        self.contains(hash)
    }
    fn is_empty(&self) -> bool {
        Self::is_empty(self)
    }
}

impl InboundPassport {
    /// Collects the passport members of `baggage`.
    #[must_use]
    pub fn from_baggage(baggage: &Baggage) -> Self {
        Self {
            chain_tip: baggage.get(keys::CHAIN_TIP).map(str::to_owned),
            inline: baggage.get(keys::PASSPORT).map(str::to_owned),
            compressed: baggage.get(keys::PASSPORT_Z).map(str::to_owned),
            claim_check: baggage.get(keys::CLAIM_CHECK).map(str::to_owned),
        }
    }

    /// Whether any passport member or a chain tip is present.
    #[must_use]
    pub const fn is_present(&self) -> bool {
        self.chain_tip.is_some() || self.has_passport_member()
    }

    /// Whether any passport member (inline, compressed or claim check) is present.
    #[must_use]
    pub const fn has_passport_member(&self) -> bool {
        self.inline.is_some() || self.compressed.is_some() || self.claim_check.is_some()
    }

    /// What `kest.chain_tip` announces.
    ///
    /// # Errors
    /// [`PropagationError::MalformedTip`] when it is neither `0` nor 64 hex digits.
    pub fn announced_tip(&self) -> Result<AnnouncedTip, PropagationError> {
        match self.chain_tip.as_deref().map(str::trim) {
            None => Ok(AnnouncedTip::Absent),
            Some("0") => Ok(AnnouncedTip::Empty),
            Some(text) => Sha256Digest::from_hex(text)
                .map(AnnouncedTip::Hash)
                .map_err(|_| PropagationError::MalformedTip {
                    value: kest_canon::escape_untrusted(text, 80),
                }),
        }
    }

    /// The announced chain tip, when it is a well-formed entry hash.
    #[must_use]
    pub fn tip(&self) -> Option<EntryHash> {
        match self.announced_tip() {
            Ok(AnnouncedTip::Hash(hash)) => Some(hash),
            _ => None,
        }
    }

    /// Each passport member's text, in the order inline, compressed, claim check.
    /// `claimed` is the passport JSON the caller redeemed the claim check for, if any.
    fn member_texts(
        &self,
        claimed: Option<&str>,
        limits: &Limits,
    ) -> Vec<(&'static str, Result<String, PropagationError>)> {
        let mut members = Vec::new();
        if let Some(json) = &self.inline {
            members.push((keys::PASSPORT, Ok(json.clone())));
        }
        if let Some(value) = &self.compressed {
            members.push((
                keys::PASSPORT_Z,
                decompress_passport(value, limits.max_bytes),
            ));
        }
        match (&self.claim_check, claimed) {
            (Some(_), Some(json)) => members.push((keys::CLAIM_CHECK, Ok(json.to_owned()))),
            (Some(id), None) => members.push((
                keys::CLAIM_CHECK,
                Err(PropagationError::NoClaimStore {
                    id: kest_canon::escape_untrusted(id, 80),
                }),
            )),
            (None, _) => {}
        }
        members
    }

    /// Picks the passport to continue from, verifying every member with `verifier`.
    ///
    /// Each member (inline, compressed, claim check) is verified on its own; one that
    /// fails never masks one that verifies. With a chain tip, the chosen passport is one
    /// that verifies and ends at it. Without one, a member that extends every other wins
    /// (a stale shorter copy beside it is fine); two verified passports that diverge are
    /// a [`PropagationError::ConflictingMembers`]. A chain tip with no readable passport
    /// is an error: the chain must never silently restart.
    ///
    /// `claimed` is the passport JSON the caller redeemed `claim_check` for, if it did.
    ///
    /// # Errors
    /// [`PropagationError::Passport`] with the verifier's cause (index, `entry_id`,
    /// fault) when no member can be used, [`PropagationError::TipWithoutPassport`],
    /// [`PropagationError::TipMismatch`], [`PropagationError::MalformedTip`],
    /// [`PropagationError::ConflictingMembers`] or [`PropagationError::NoClaimStore`].
    pub fn choose_verified(
        &self,
        claimed: Option<&str>,
        verifier: &Verifier<'_>,
        limits: &Limits,
    ) -> Result<Option<VerificationReport>, PropagationError> {
        self.choose(
            claimed,
            limits,
            |text| verifier.verify_json(text),
            VerificationReport::passport,
        )
    }

    /// Reads every member with `read` and picks one by the rules of
    /// [`InboundPassport::choose_verified`].
    fn choose<T, C: Chain>(
        &self,
        claimed: Option<&str>,
        limits: &Limits,
        read: impl Fn(&str) -> Result<T, kest_passport::PassportError>,
        chain: impl Fn(&T) -> &C,
    ) -> Result<Option<T>, PropagationError> {
        let tip = self.announced_tip()?;
        let members = self
            .member_texts(claimed, limits)
            .into_iter()
            .map(|(key, text)| {
                let read = text.and_then(|text| {
                    read(&text).map_err(|source| PropagationError::Passport { key, source })
                });
                (key, read)
            })
            .collect();
        select(tip, members, chain)
    }

    /// As [`InboundPassport::choose_verified`], decoding each member without checking
    /// signatures: for tools that display lineage, never for deciding anything.
    ///
    /// # Errors
    /// As [`InboundPassport::choose_verified`], with decoding causes.
    pub fn choose_unverified(
        &self,
        claimed: Option<&str>,
        limits: &Limits,
    ) -> Result<Option<UnverifiedPassport>, PropagationError> {
        self.choose(
            claimed,
            limits,
            |text| UnverifiedPassport::decode(text, limits),
            |passport: &UnverifiedPassport| passport,
        )
    }

    /// As [`InboundPassport::choose_unverified`], reading each member as a list of opaque
    /// strings ([`RawPassport`]): the `BaggageManager` contract, for bindings that hand
    /// entries to code which verifies them itself. The choice between members, the size
    /// limits and the failure rules are the same.
    ///
    /// # Errors
    /// As [`InboundPassport::choose_unverified`].
    pub fn choose_raw(
        &self,
        claimed: Option<&str>,
        limits: &Limits,
    ) -> Result<Option<RawPassport>, PropagationError> {
        self.choose(
            claimed,
            limits,
            |text| kest_passport::parse_entry_list(text, limits).map(RawPassport),
            |passport: &RawPassport| passport,
        )
    }
}

/// The choice shared by the verified and unverified readers.
fn select<T, C: Chain>(
    tip: AnnouncedTip,
    members: Vec<(&'static str, Result<T, PropagationError>)>,
    chain: impl Fn(&T) -> &C,
) -> Result<Option<T>, PropagationError> {
    if members.is_empty() {
        return match tip {
            AnnouncedTip::Absent | AnnouncedTip::Empty => Ok(None),
            AnnouncedTip::Hash(hash) => {
                Err(PropagationError::TipWithoutPassport { tip: hash.to_hex() })
            }
        };
    }
    let mut good: Vec<(&'static str, T)> = Vec::new();
    let mut failed: Vec<(&'static str, PropagationError)> = Vec::new();
    for (key, result) in members {
        match result {
            Ok(value) => good.push((key, value)),
            Err(error) => failed.push((key, error)),
        }
    }
    let chosen = match tip {
        AnnouncedTip::Hash(hash) => {
            let at_tip = good
                .iter()
                .position(|(_, value)| chain(value).tip_hash() == Some(hash));
            match at_tip {
                Some(position) => Some(good.swap_remove(position)),
                None => {
                    if let Some((_, error)) = failed.into_iter().next() {
                        return Err(error);
                    }
                    return Err(PropagationError::TipMismatch { tip: hash.to_hex() });
                }
            }
        }
        AnnouncedTip::Empty => {
            if good.iter().any(|(_, value)| !chain(value).is_empty()) {
                return Err(PropagationError::TipMismatch { tip: "0".into() });
            }
            if let Some((_, error)) = failed.into_iter().next() {
                return Err(error);
            }
            return Ok(None);
        }
        AnnouncedTip::Absent => {
            if good.is_empty() {
                if let Some((_, error)) = failed.into_iter().next() {
                    return Err(error);
                }
                return Ok(None);
            }
            // The freshest: a member that holds every other member's tip.
            let freshest = (0..good.len()).find(|candidate| {
                good.iter().all(|(_, other)| {
                    chain(other).tip_hash().is_none_or(|tip| {
                        good.get(*candidate)
                            .is_some_and(|(_, c)| chain(c).holds(&tip))
                    })
                })
            });
            match freshest {
                Some(position) => Some(good.swap_remove(position)),
                None => {
                    let first = good.first().map_or("", |(key, _)| key);
                    let second = good.get(1).map_or("", |(key, _)| key);
                    return Err(PropagationError::ConflictingMembers {
                        first,
                        second,
                        reason: "the two passports diverge (neither extends the other) and no \
                                 `kest.chain_tip` says which one is meant"
                            .into(),
                    });
                }
            }
        }
    };
    for (key, error) in &failed {
        tracing::warn!(
            member = key,
            %error,
            "kest: ignoring a baggage member that does not verify; another member carries the passport"
        );
    }
    Ok(chosen.map(|(_, value)| value))
}

/// The store key under which a claim check's passport is kept: `kest.claim.<id>`.
#[must_use]
pub fn claim_store_key(id: &str) -> String {
    format!("{}{id}", keys::CLAIM_PREFIX)
}
