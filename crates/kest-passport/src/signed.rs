//! Signed entries: the JWS, its hash and its parsed payload.

use std::fmt;

use kest_canon::Sha256Digest;
use kest_crypto::{
    Algorithm, CompactJws, CryptoError, JwsHeader, KeyQuery, KeyResolver, Signer, VerifyingKey,
    encode_header_with_chain, verify_parts,
};
use serde_json::Value;

use crate::entry::Entry;
use crate::error::{EntryFault, PassportError};

/// An entry's hash: SHA-256 of the UTF-8 of its full compact JWS. Parents refer to their
/// parents by it, and `kest.chain_tip` carries the tip's.
pub type EntryHash = Sha256Digest;

/// A signed entry: the compact JWS, its hash, and the payload it carries.
///
/// A value of this type was either signed in this process ([`SignedEntry::sign`],
/// [`UnsignedEntry::finish`]) or read from outside and verified against a trusted key
/// ([`UnverifiedEntry::verify`], or the [`crate::Verifier`]). Text from elsewhere parses
/// into an [`UnverifiedEntry`], which cannot be put in a [`crate::Passport`].
#[derive(Clone)]
pub struct SignedEntry {
    jws: Box<str>,
    hash: EntryHash,
    header: JwsHeader,
    signing_input_len: usize,
    signature: Vec<u8>,
    entry: Entry,
}

impl fmt::Debug for SignedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedEntry")
            .field("hash", &self.hash)
            .field("entry_id", &self.entry.entry_id())
            .field("operation", &self.entry.operation())
            .field("principal", &self.entry.principal())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SignedEntry {
    fn eq(&self, other: &Self) -> bool {
        self.jws == other.jws
    }
}

impl Eq for SignedEntry {}

/// An entry canonicalized and ready for a signature from outside, such as a KMS or an
/// async identity provider.
#[derive(Debug, Clone)]
pub struct UnsignedEntry {
    entry: Entry,
    header: JwsHeader,
    signing_input: String,
}

impl UnsignedEntry {
    /// Canonicalizes `entry` under the header `{"alg":<alg>,"kid":<kid>,"typ":"JWS"}`.
    ///
    /// # Errors
    /// [`PassportError::Build`] when the entry does not canonicalize.
    pub fn new(entry: Entry, alg: Algorithm, kid: &str) -> Result<Self, PassportError> {
        Self::with_chain(entry, alg, kid, None)
    }

    /// As [`UnsignedEntry::new`], with an `x5c` certificate chain in the header (for keys
    /// certified by a CA, such as SPIFFE X.509-SVIDs).
    ///
    /// # Errors
    /// [`PassportError::Build`] when the entry does not canonicalize.
    pub fn with_chain(
        entry: Entry,
        alg: Algorithm,
        kid: &str,
        x5c: Option<&[String]>,
    ) -> Result<Self, PassportError> {
        let header_b64 =
            kest_canon::b64url_encode(encode_header_with_chain(alg, kid, x5c).as_bytes());
        let mut unsigned = Self::with_header_b64(entry, alg, kid, &header_b64)?;
        unsigned.header.x5c = x5c.map(<[String]>::to_vec);
        Ok(unsigned)
    }

    fn with_header_b64(
        entry: Entry,
        alg: Algorithm,
        kid: &str,
        header_b64: &str,
    ) -> Result<Self, PassportError> {
        let payload = entry
            .canonical_bytes()
            .map_err(|fault| PassportError::Build {
                reason: fault.to_string(),
            })?;
        Ok(Self {
            entry,
            header: JwsHeader {
                alg,
                kid: Some(kid.to_owned()),
                typ: Some("JWS".to_owned()),
                x5c: None,
            },
            signing_input: kest_crypto::signing_input(header_b64, &payload),
        })
    }

    /// The bytes to sign: `b64(header) "." b64(payload)`.
    #[must_use]
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The algorithm the signature must use.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        self.header.alg
    }

    /// The header's `kid`.
    #[must_use]
    pub fn key_id(&self) -> &str {
        self.header.kid.as_deref().unwrap_or_default()
    }

    /// The entry back, unsigned (to sign it under another key).
    #[must_use]
    pub fn into_entry(self) -> Entry {
        self.entry
    }

    /// Attaches the signature. It is not verified here (the caller's signer made it); it
    /// must have the algorithm's length. There is no way to finish without one.
    ///
    /// # Errors
    /// [`PassportError::Signing`] for a signature of the wrong length.
    pub fn finish(self, signature: &[u8]) -> Result<SignedEntry, PassportError> {
        let alg = self.header.alg;
        if signature.len() != alg.signature_len() {
            return Err(PassportError::Signing(CryptoError::SignatureLength {
                alg,
                expected: alg.signature_len(),
                found: signature.len(),
            }));
        }
        let signing_input_len = self.signing_input.len();
        let mut jws = self.signing_input;
        jws.push('.');
        jws.push_str(&kest_canon::b64url_encode(signature));
        Ok(SignedEntry {
            hash: kest_canon::sha256(jws.as_bytes()),
            jws: jws.into_boxed_str(),
            header: self.header,
            signing_input_len,
            signature: signature.to_vec(),
            entry: self.entry,
        })
    }
}

/// On the error path only: whatever `entry_id` a rejected payload names, for the message
/// (escaped and shortened: it is attacker-controlled text).
fn entry_id_of(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        entry_id: Option<Value>,
    }
    let id = serde_json::from_slice::<IdOnly>(payload).ok()?.entry_id?;
    id.as_str().map(|id| kest_canon::escape_untrusted(id, 64))
}

/// A parse failure with whatever `entry_id` could be read, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct ParseFailure {
    pub(crate) entry_id: Option<String>,
    pub(crate) fault: EntryFault,
}

impl ParseFailure {
    /// The error for this failure at position `index` of a passport.
    pub(crate) fn at(self, index: usize) -> PassportError {
        PassportError::Entry {
            index,
            entry_id: self.entry_id,
            fault: self.fault,
        }
    }
}

impl SignedEntry {
    /// Canonicalizes and signs `entry`.
    ///
    /// # Errors
    /// [`PassportError::Build`] when the entry does not canonicalize, or
    /// [`PassportError::Signing`] when the signer fails.
    pub fn sign(entry: Entry, signer: &dyn Signer) -> Result<Self, PassportError> {
        let unsigned = UnsignedEntry::with_header_b64(
            entry,
            signer.algorithm(),
            signer.key_id(),
            &signer.header_b64(),
        )?;
        let signature = signer
            .sign(unsigned.signing_input())
            .map_err(PassportError::Signing)?;
        unsigned.finish(&signature)
    }

    /// Parses without checking the signature; only [`UnverifiedEntry`] hands this out.
    /// `hash` is the SHA-256 of `jws`, when the caller has it already.
    fn parse_unchecked(jws: &str, hash: Option<EntryHash>) -> Result<Self, ParseFailure> {
        let no_id = |fault| ParseFailure {
            entry_id: None,
            fault,
        };
        let compact = CompactJws::parse(jws).map_err(|error| no_id(EntryFault::Jws(error)))?;
        let entry = Entry::from_json_slice(compact.payload()).map_err(|fault| ParseFailure {
            entry_id: entry_id_of(compact.payload()),
            fault,
        })?;
        let entry_id = Some(entry.entry_id().to_string());
        let with_id = |fault| ParseFailure {
            entry_id: entry_id.clone(),
            fault,
        };
        let canonical = entry.canonical_bytes().map_err(with_id)?;
        if canonical != compact.payload() {
            return Err(with_id(EntryFault::NotCanonical));
        }
        Ok(Self {
            hash: hash.unwrap_or_else(|| kest_canon::sha256(jws.as_bytes())),
            jws: jws.into(),
            header: compact.header().clone(),
            signing_input_len: compact.signing_input().len(),
            signature: compact.signature().to_vec(),
            entry,
        })
    }

    /// The question a resolver answers for this entry: its principal, header `kid`,
    /// `alg`, `x5c` and signing time.
    #[must_use]
    pub fn key_query(&self) -> KeyQuery<'_> {
        KeyQuery {
            principal: self.entry.principal().unwrap_or_default(),
            kid: self.header.kid.as_deref(),
            alg: self.header.alg,
            x5c: self.header.x5c.as_deref(),
            signed_at_ms: Some(self.entry.timestamp_ms()),
        }
    }

    /// Checks the signature again with the keys `resolver` trusts for this entry's
    /// principal (and header `kid`), and returns the key that verified it. The key never
    /// comes from the entry itself. When the principal holds several keys of the header's
    /// algorithm (a rotation), any of them may have signed.
    ///
    /// # Errors
    /// [`EntryFault::Key`] when no key is known, [`EntryFault::Signature`] when the
    /// signature or its `alg` does not match any of the principal's keys.
    pub fn verify_signature(&self, resolver: &dyn KeyResolver) -> Result<VerifyingKey, EntryFault> {
        let candidates = resolver
            .candidates(&self.key_query())
            .map_err(EntryFault::Key)?;
        let mut first_error = None;
        for key in candidates {
            match verify_parts(&self.header, self.signing_input(), &self.signature, &key) {
                Ok(()) => return Ok(key),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(EntryFault::Signature(
            first_error.unwrap_or(CryptoError::BadSignature),
        ))
    }

    /// Whether `key` is still one the resolver trusts for this entry: how a cached
    /// verification is re-checked without a signature operation.
    pub(crate) fn still_trusted(&self, key: &VerifyingKey, resolver: &dyn KeyResolver) -> bool {
        resolver
            .candidates(&self.key_query())
            .is_ok_and(|keys| keys.contains(key))
    }

    /// The compact JWS.
    #[must_use]
    pub fn jws(&self) -> &str {
        &self.jws
    }

    /// The entry's hash.
    #[must_use]
    pub const fn hash(&self) -> EntryHash {
        self.hash
    }

    /// The payload.
    #[must_use]
    pub const fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The protected header.
    #[must_use]
    pub const fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The signed bytes: `b64(header) "." b64(payload)`.
    #[must_use]
    pub fn signing_input(&self) -> &str {
        self.jws.get(..self.signing_input_len).unwrap_or_default()
    }
}

/// An entry read from outside: well formed (shape, header, canonical payload, schema) but
/// with its signature not yet checked.
///
/// It shows everything a signed entry shows, so that tools can display it, but it cannot
/// go into a [`crate::Passport`]: [`UnverifiedEntry::verify`] (or the
/// [`crate::Verifier`], for a whole passport) turns it into a [`SignedEntry`].
///
/// ```
/// use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
/// use kest_passport::{EntryBuilder, SignedEntry, UnverifiedEntry};
/// use kest_trust::WeakestLink;
///
/// let key = SigningKey::from_ed25519_seed(&[9; 32])?;
/// let trusted = StaticKeyResolver::new().with_key("w", key.verifying_key().clone());
/// let entry = EntryBuilder::new("fetch").principal("w").build_on(&[], &WeakestLink)?;
/// let jws = SignedEntry::sign(entry, &KeySigner::new(key, "w"))?.jws().to_owned();
///
/// let read = UnverifiedEntry::parse(&jws)?;
/// assert_eq!(read.entry().operation(), "fetch");
/// let signed: SignedEntry = read.verify(&trusted)?;
/// assert!(UnverifiedEntry::parse(&jws)?.verify(&StaticKeyResolver::new()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct UnverifiedEntry {
    inner: SignedEntry,
}

impl fmt::Debug for UnverifiedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedEntry")
            .field("hash", &self.inner.hash)
            .field("entry_id", &self.inner.entry.entry_id())
            .finish_non_exhaustive()
    }
}

impl PartialEq for UnverifiedEntry {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for UnverifiedEntry {}

impl UnverifiedEntry {
    /// Parses a compact JWS: its shape, header, canonical payload and schema. The
    /// signature is **not** checked.
    ///
    /// # Errors
    /// The [`EntryFault`] found first.
    pub fn parse(jws: &str) -> Result<Self, EntryFault> {
        Self::parse_reporting_id(jws).map_err(|failure| failure.fault)
    }

    pub(crate) fn parse_reporting_id(jws: &str) -> Result<Self, ParseFailure> {
        SignedEntry::parse_unchecked(jws, None).map(|inner| Self { inner })
    }

    /// As [`UnverifiedEntry::parse_reporting_id`], for a JWS whose hash is known.
    pub(crate) fn parse_hashed(jws: &str, hash: EntryHash) -> Result<Self, ParseFailure> {
        SignedEntry::parse_unchecked(jws, Some(hash)).map(|inner| Self { inner })
    }

    /// Checks the signature with the keys `resolver` trusts for the entry's principal.
    ///
    /// # Errors
    /// As [`SignedEntry::verify_signature`].
    pub fn verify(self, resolver: &dyn KeyResolver) -> Result<SignedEntry, EntryFault> {
        self.verify_returning_key(resolver).map(|(entry, _)| entry)
    }

    pub(crate) fn verify_returning_key(
        self,
        resolver: &dyn KeyResolver,
    ) -> Result<(SignedEntry, VerifyingKey), EntryFault> {
        let key = self.inner.verify_signature(resolver)?;
        Ok((self.inner, key))
    }

    /// Trusts the entry without checking its signature. For tools that only display
    /// lineage and for callers who verified it some other way; never for input that
    /// decides anything.
    #[must_use]
    pub fn dangerous_assume_verified(self) -> SignedEntry {
        self.inner
    }

    /// The compact JWS.
    #[must_use]
    pub fn jws(&self) -> &str {
        self.inner.jws()
    }

    /// The entry's hash.
    #[must_use]
    pub const fn hash(&self) -> EntryHash {
        self.inner.hash
    }

    /// The payload, as claimed.
    #[must_use]
    pub const fn entry(&self) -> &Entry {
        &self.inner.entry
    }

    /// The protected header.
    #[must_use]
    pub const fn header(&self) -> &JwsHeader {
        &self.inner.header
    }

    pub(crate) const fn as_unchecked(&self) -> &SignedEntry {
        &self.inner
    }
}
