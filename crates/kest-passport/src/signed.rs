//! Signed entries: the JWS, its hash, and what chaining reads; the payload is parsed when
//! asked for.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use kest_canon::Sha256Digest;
use kest_crypto::{
    Algorithm, CompactJws, CryptoError, JwsHeader, KeyQuery, KeyResolver, Signer, VerifyingKey,
    encode_header_with_chain, verify_parts,
};
use kest_trust::{TaintSet, TrustScore};
use serde_json::Value;
use uuid::Uuid;

use crate::entry::Entry;
use crate::error::{EntryFault, PassportError};
use crate::packed::Packed;

/// An entry's hash: SHA-256 of the UTF-8 of its full compact JWS. Parents refer to their
/// parents by it, and `kest.chain_tip` carries the tip's.
pub type EntryHash = Sha256Digest;

/// A signed entry: the compact JWS, its hash, and the payload it carries.
///
/// A value of this type was either signed in this process ([`SignedEntry::sign`],
/// [`UnsignedEntry::finish`]) or read from outside and verified against a trusted key
/// ([`UnverifiedEntry::verify`], or the [`crate::Verifier`]). Text from elsewhere parses
/// into an [`UnverifiedEntry`], which cannot be put in a [`crate::Passport`].
///
/// Memory: once the entry is pushed into a [`crate::Passport`], it keeps its JWS in a
/// dense lossless form (the header's base64 shared with the entry before it, the payload
/// and signature as bytes, the payload's member names, hashes and UUIDs as bytes: about
/// 300 bytes for a JWS of 990) and what chaining reads on every call (hash, `entry_id`,
/// trust score, taints). [`SignedEntry::jws`] writes the text back byte for byte, and the
/// header and payload are parsed again when [`SignedEntry::entry`] or
/// [`SignedEntry::header`] is called, and not kept. A freshly signed or verified entry
/// keeps its text and parsed form until it is pushed.
#[derive(Clone)]
pub struct SignedEntry {
    text: Text,
    hash: EntryHash,
    chaining: Chaining,
    /// The parsed header, signature and payload, while the entry is fresh.
    decoded: Option<Box<Decoded>>,
}

/// How an entry keeps its JWS.
#[derive(Clone)]
enum Text {
    /// As signed or read, with the length of its signing input.
    Compact {
        jws: Box<str>,
        signing_input_len: usize,
    },
    /// Held in a passport: see [`Packed`].
    Packed(Packed),
}

/// What chaining reads from a held entry on every call.
#[derive(Clone)]
struct Chaining {
    entry_id: Uuid,
    trust: TrustScore,
    taints: TaintSet,
}

impl Chaining {
    fn of(entry: &Entry) -> Self {
        Self {
            entry_id: entry.entry_id(),
            trust: entry.trust_score(),
            taints: entry.taints(),
        }
    }
}

/// The parts of a JWS a held entry parses on demand.
#[derive(Clone)]
struct Decoded {
    header: JwsHeader,
    signature: Vec<u8>,
    entry: Entry,
    /// The canonical payload, when the entry was signed here: what a passport packs.
    payload: Option<Vec<u8>>,
}

impl Decoded {
    /// The question a resolver answers for this entry: its principal, header `kid`,
    /// `alg`, `x5c` and signing time.
    fn key_query(&self) -> KeyQuery<'_> {
        KeyQuery {
            principal: self.entry.principal().unwrap_or_default(),
            kid: self.header.kid.as_deref(),
            alg: self.header.alg,
            x5c: self.header.x5c.as_deref(),
            signed_at_ms: Some(self.entry.timestamp_ms()),
        }
    }

    /// Parses a JWS this type already parsed once, when the entry was made or read.
    fn of(jws: &str) -> Result<Self, EntryFault> {
        let compact = CompactJws::parse(jws).map_err(EntryFault::Jws)?;
        Ok(Self {
            entry: Entry::from_json_slice(compact.payload())?,
            header: compact.header().clone(),
            signature: compact.signature().to_vec(),
            payload: None,
        })
    }
}

impl fmt::Debug for SignedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entry = self.entry();
        f.debug_struct("SignedEntry")
            .field("hash", &self.hash)
            .field("entry_id", &self.chaining.entry_id)
            .field("operation", &entry.operation())
            .field("principal", &entry.principal())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SignedEntry {
    /// Equal when the JWS texts are: their SHA-256 hashes are compared.
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

impl Eq for SignedEntry {}

/// An entry canonicalized and ready for a signature from outside, such as a KMS or an
/// async identity provider.
#[derive(Clone)]
pub struct UnsignedEntry {
    entry: Entry,
    header: JwsHeader,
    signing_input: String,
    /// The canonical payload (also in `signing_input`, as base64), kept for the passport.
    payload: Vec<u8>,
}

impl fmt::Debug for UnsignedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnsignedEntry")
            .field("entry", &self.entry)
            .field("header", &self.header)
            .field("signing_input", &self.signing_input)
            .finish_non_exhaustive()
    }
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
            payload,
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
        let encoded = kest_canon::b64url_encode(signature);
        // Exactly sized: a held entry keeps this allocation for as long as its passport.
        let mut jws = String::with_capacity(signing_input_len + 1 + encoded.len());
        jws.push_str(&self.signing_input);
        jws.push('.');
        jws.push_str(&encoded);
        Ok(SignedEntry {
            hash: kest_canon::sha256(jws.as_bytes()),
            text: Text::Compact {
                jws: jws.into_boxed_str(),
                signing_input_len,
            },
            chaining: Chaining::of(&self.entry),
            decoded: Some(Box::new(Decoded {
                header: self.header,
                signature: signature.to_vec(),
                entry: self.entry,
                payload: Some(self.payload),
            })),
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
            text: Text::Compact {
                jws: jws.into(),
                signing_input_len: compact.signing_input().len(),
            },
            chaining: Chaining::of(&entry),
            decoded: Some(Box::new(Decoded {
                header: compact.header().clone(),
                signature: compact.signature().to_vec(),
                entry,
                payload: None,
            })),
        })
    }

    /// Packs the JWS and drops the parsed header and payload, keeping what chaining
    /// reads: how a passport holds its entries. `before` is the entry it follows, whose
    /// header text is shared when it is the same. Should the JWS not pack (it always
    /// does), the entry keeps its text.
    pub(crate) fn into_held(mut self, before: Option<&Self>) -> Self {
        if let Text::Compact { jws, .. } = &self.text
            && let Some(packed) = self.pack(jws, before)
        {
            debug_assert_eq!(packed.jws(), **jws, "a held JWS comes back as it was");
            self.text = Text::Packed(packed);
        }
        self.decoded = None;
        self
    }

    fn pack(&self, jws: &str, before: Option<&Self>) -> Option<Packed> {
        let mut parts = jws.split('.');
        let (header, payload_b64, signature_b64) = (parts.next()?, parts.next()?, parts.next()?);
        let header = match before.map(|entry| &entry.text) {
            Some(Text::Packed(shared)) if **shared.header() == *header => {
                Arc::clone(shared.header())
            }
            _ => Arc::from(header),
        };
        let decoded = self.decoded.as_deref();
        let payload = match decoded.and_then(|decoded| decoded.payload.as_deref()) {
            Some(payload) => Cow::Borrowed(payload),
            None => Cow::Owned(kest_canon::b64url_decode_unpadded(payload_b64, "payload").ok()?),
        };
        let signature = match decoded {
            Some(decoded) => Cow::Borrowed(decoded.signature.as_slice()),
            None => {
                Cow::Owned(kest_canon::b64url_decode_unpadded(signature_b64, "signature").ok()?)
            }
        };
        Packed::new(header, &payload, &signature)
    }

    /// The parsed parts: kept while fresh, parsed again once held. The JWS parsed when
    /// the entry was made or read; should it ever not parse again, the result has no
    /// signature and an unreadable payload ([`Entry::unreadable`]), which no key verifies
    /// and no policy takes for trusted.
    fn decoded(&self) -> Cow<'_, Decoded> {
        match &self.decoded {
            Some(decoded) => Cow::Borrowed(decoded),
            None => Cow::Owned(Decoded::of(&self.jws()).unwrap_or_else(|_| Decoded {
                header: JwsHeader {
                    alg: Algorithm::EdDSA,
                    kid: None,
                    typ: None,
                    x5c: None,
                },
                signature: Vec::new(),
                entry: Entry::unreadable(self.chaining.entry_id),
                payload: None,
            })),
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
        let decoded = self.decoded();
        let signing_input = self.signing_input();
        let candidates = resolver
            .candidates(&decoded.key_query())
            .map_err(EntryFault::Key)?;
        let mut first_error = None;
        for key in candidates {
            match verify_parts(&decoded.header, &signing_input, &decoded.signature, &key) {
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
            .candidates(&self.decoded().key_query())
            .is_ok_and(|keys| keys.contains(key))
    }

    /// The compact JWS: borrowed while the entry is fresh, written back (byte for byte)
    /// from the dense form once it is held in a passport.
    #[must_use]
    pub fn jws(&self) -> Cow<'_, str> {
        match &self.text {
            Text::Compact { jws, .. } => Cow::Borrowed(jws),
            Text::Packed(packed) => Cow::Owned(packed.jws()),
        }
    }

    /// The entry's hash.
    #[must_use]
    pub const fn hash(&self) -> EntryHash {
        self.hash
    }

    /// The payload: borrowed while the entry is fresh, parsed from the JWS once it is
    /// held in a passport. Chaining's own fields ([`SignedEntry::entry_id`],
    /// [`SignedEntry::trust_score`], [`SignedEntry::taints`]) never parse.
    #[must_use]
    pub fn entry(&self) -> Cow<'_, Entry> {
        match self.decoded() {
            Cow::Borrowed(decoded) => Cow::Borrowed(&decoded.entry),
            Cow::Owned(decoded) => Cow::Owned(decoded.entry),
        }
    }

    /// The protected header, parsed as [`SignedEntry::entry`] is.
    #[must_use]
    pub fn header(&self) -> Cow<'_, JwsHeader> {
        match self.decoded() {
            Cow::Borrowed(decoded) => Cow::Borrowed(&decoded.header),
            Cow::Owned(decoded) => Cow::Owned(decoded.header),
        }
    }

    /// `entry_id`, without parsing the payload.
    #[must_use]
    pub const fn entry_id(&self) -> Uuid {
        self.chaining.entry_id
    }

    /// `trust_score`, without parsing the payload.
    #[must_use]
    pub const fn trust_score(&self) -> TrustScore {
        self.chaining.trust
    }

    /// The taints in effect after this entry, without parsing the payload.
    #[must_use]
    pub const fn taints(&self) -> &TaintSet {
        &self.chaining.taints
    }

    /// The signature's base64url, the JWS's last segment, without writing the rest of a
    /// held entry's text back.
    #[must_use]
    pub fn signature_b64(&self) -> Cow<'_, str> {
        match &self.text {
            Text::Compact { jws, .. } => Cow::Borrowed(
                jws.rsplit_once('.')
                    .map(|(_, signature)| signature)
                    .unwrap_or_default(),
            ),
            Text::Packed(packed) => Cow::Owned(kest_canon::b64url_encode(packed.signature())),
        }
    }

    /// The length of [`SignedEntry::jws`], without writing it.
    pub(crate) fn jws_len(&self) -> usize {
        match &self.text {
            Text::Compact { jws, .. } => jws.len(),
            Text::Packed(packed) => packed.jws_len(),
        }
    }

    /// Appends [`SignedEntry::jws`] to `out`; `scratch` is working space for a held one.
    pub(crate) fn write_jws(&self, out: &mut String, scratch: &mut Vec<u8>) {
        match &self.text {
            Text::Compact { jws, .. } => out.push_str(jws),
            Text::Packed(packed) => packed.write_jws(out, scratch),
        }
    }

    /// The signed bytes: `b64(header) "." b64(payload)`, borrowed or written back as
    /// [`SignedEntry::jws`] is.
    #[must_use]
    pub fn signing_input(&self) -> Cow<'_, str> {
        match &self.text {
            Text::Compact {
                jws,
                signing_input_len,
            } => Cow::Borrowed(jws.get(..*signing_input_len).unwrap_or_default()),
            Text::Packed(packed) => Cow::Owned(packed.signing_input()),
        }
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
/// let jws = SignedEntry::sign(entry, &KeySigner::new(key, "w"))?.jws().into_owned();
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
            .field("entry_id", &self.inner.chaining.entry_id)
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
    pub fn jws(&self) -> Cow<'_, str> {
        self.inner.jws()
    }

    /// The entry's hash.
    #[must_use]
    pub const fn hash(&self) -> EntryHash {
        self.inner.hash
    }

    /// The payload, as claimed.
    #[must_use]
    pub fn entry(&self) -> Cow<'_, Entry> {
        self.inner.entry()
    }

    /// The protected header.
    #[must_use]
    pub fn header(&self) -> Cow<'_, JwsHeader> {
        self.inner.header()
    }

    pub(crate) const fn as_unchecked(&self) -> &SignedEntry {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
    use kest_trust::WeakestLink;

    use super::SignedEntry;
    use crate::EntryBuilder;

    fn header_of(entry: &SignedEntry) -> &std::sync::Arc<str> {
        match &entry.text {
            super::Text::Packed(packed) => packed.header(),
            super::Text::Compact { .. } => panic!("a held entry is packed"),
        }
    }

    /// A held entry shares the header text of the entry before it when the signer is the
    /// same, and keeps its own otherwise; both give back their JWS.
    #[test]
    fn held_entries_share_the_header_of_the_same_signer() {
        let sign = |seed: u8, kid: &str| {
            let entry = EntryBuilder::new("op")
                .principal("w")
                .build_on(&[], &WeakestLink)
                .unwrap();
            let key = SigningKey::from_ed25519_seed(&[seed; 32]).unwrap();
            SignedEntry::sign(entry, &KeySigner::new(key, kid)).unwrap()
        };
        let (a, b, c) = (sign(1, "w"), sign(1, "w"), sign(2, "other"));
        let texts = [
            a.jws().into_owned(),
            b.jws().into_owned(),
            c.jws().into_owned(),
        ];
        assert_eq!(a.jws_len(), texts[0].len());
        assert_eq!(*a.signature_b64(), *texts[0].rsplit('.').next().unwrap());
        let a = a.into_held(None);
        let b = b.into_held(Some(&a));
        let c = c.into_held(Some(&b));
        assert!(std::sync::Arc::ptr_eq(header_of(&a), header_of(&b)));
        assert!(!std::sync::Arc::ptr_eq(header_of(&b), header_of(&c)));
        for (held, text) in [a, b, c].iter().zip(&texts) {
            assert_eq!(*held.jws(), **text);
            assert_eq!(*held.signature_b64(), *text.rsplit('.').next().unwrap());
            assert_eq!(held.jws_len(), text.len());
            let mut written = String::from("[");
            held.write_jws(&mut written, &mut Vec::new());
            assert_eq!(written, format!("[{text}"));
        }
    }

    /// An unsigned entry shows what will be signed, and not its payload a second time as
    /// a list of bytes.
    #[test]
    fn an_unsigned_entry_shows_its_signing_input() {
        let entry = EntryBuilder::new("op")
            .principal("w")
            .build_on(&[], &WeakestLink)
            .unwrap();
        let unsigned =
            super::UnsignedEntry::new(entry, kest_crypto::Algorithm::EdDSA, "k").unwrap();
        let text = format!("{unsigned:?}");
        let signing_input = std::str::from_utf8(unsigned.signing_input()).unwrap();
        assert!(text.starts_with("UnsignedEntry {"), "{text}");
        assert!(text.contains(signing_input), "{text}");
        assert!(text.contains("operation: \"op\""), "{text}");
        assert!(!text.contains("payload"), "{text}");
    }

    /// Should a held entry's JWS ever fail to parse again, its payload reads as nothing
    /// anyone would trust, and its signature checks against no key.
    #[test]
    fn an_entry_that_no_longer_parses_reads_as_untrusted() {
        let key = SigningKey::from_ed25519_seed(&[3; 32]).unwrap();
        let resolver = StaticKeyResolver::new().with_key("w", key.verifying_key().clone());
        let entry = EntryBuilder::new("op")
            .principal("w")
            .build_on(&[], &WeakestLink)
            .unwrap();
        let signed = SignedEntry::sign(entry, &KeySigner::new(key, "w")).unwrap();
        signed.verify_signature(&resolver).unwrap();
        let mut held = signed.into_held(None);
        held.verify_signature(&resolver).unwrap();
        held.text = super::Text::Compact {
            jws: "not.a.jws".into(),
            signing_input_len: 5,
        };
        let read = held.entry();
        assert_eq!(read.entry_id(), held.entry_id());
        assert_eq!(read.trust_score().get(), 0);
        assert!(read.taints().contains("kest.unreadable"));
        assert_eq!(read.principal(), None);
        assert!(held.verify_signature(&resolver).is_err());
    }
}
