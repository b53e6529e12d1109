//! JWS compact serialization (RFC 7515 §7.1): sign, parse, verify.

use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::alg::kest_shorten;
use crate::{Algorithm, CryptoError, SigningKey, VerifyingKey};

/// The largest JWS accepted by [`CompactJws::parse`].
pub const MAX_JWS_BYTES: usize = 1024 * 1024;

/// Something that signs JWS signing inputs: a local key, or (above this crate) a KMS or
/// SPIFFE identity.
pub trait Signer: Send + Sync {
    /// The algorithm of the signatures it makes.
    fn algorithm(&self) -> Algorithm;
    /// The `kid` written into the header.
    fn key_id(&self) -> &str;
    /// Signs the ASCII signing input `b64(header) "." b64(payload)`.
    ///
    /// # Errors
    /// Whatever stops the signature being made. Never returns an empty signature.
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// The base64url protected header for this signer.
    fn header_b64(&self) -> String {
        kest_canon::b64url_encode(encode_header(self.algorithm(), self.key_id()).as_bytes())
    }
}

/// A [`SigningKey`] paired with the `kid` to name in headers.
///
/// Kest, like the Python package, writes the workload id as the `kid`. The encoded header
/// is computed once.
pub struct KeySigner {
    key: SigningKey,
    kid: String,
    header_b64: String,
}

impl fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySigner")
            .field("kid", &self.kid)
            .field("key", &self.key)
            .finish()
    }
}

impl KeySigner {
    /// Pairs a key with the `kid` to put in headers.
    #[must_use]
    pub fn new(key: SigningKey, kid: impl Into<String>) -> Self {
        let kid = kid.into();
        let header_b64 = kest_canon::b64url_encode(encode_header(key.algorithm(), &kid).as_bytes());
        Self {
            key,
            kid,
            header_b64,
        }
    }

    /// The key.
    #[must_use]
    pub const fn key(&self) -> &SigningKey {
        &self.key
    }
}

impl Signer for KeySigner {
    fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    fn key_id(&self) -> &str {
        &self.kid
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key.sign(signing_input)
    }

    fn header_b64(&self) -> String {
        self.header_b64.clone()
    }
}

/// The protected header Kest writes: `{"alg":"<alg>","kid":"<kid>","typ":"JWS"}`.
///
/// The text is byte-identical to the Python package's, which writes it with
/// `json.dumps(sort_keys=True, separators=(",", ":"))`. That escapes every character
/// outside printable ASCII as `\uXXXX`, so this does too.
///
/// ```
/// assert_eq!(
///     kest_crypto::encode_header(kest_crypto::Algorithm::EdDSA, "spiffe://a/b"),
///     r#"{"alg":"EdDSA","kid":"spiffe://a/b","typ":"JWS"}"#
/// );
/// ```
#[must_use]
pub fn encode_header(alg: Algorithm, kid: &str) -> String {
    encode_header_with_chain(alg, kid, None)
}

/// As [`encode_header`], with an `x5c` certificate chain (base64 DER, leaf first) after
/// `typ`, keys still in canonical order. SPIFFE X.509-SVID signers send their chain so
/// that verifiers holding only the trust bundle can check the key.
#[must_use]
pub fn encode_header_with_chain(alg: Algorithm, kid: &str, x5c: Option<&[String]>) -> String {
    #[derive(serde::Serialize)]
    struct Header<'a> {
        alg: &'a str,
        kid: &'a str,
        typ: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        x5c: Option<&'a [String]>,
    }
    let header = Header {
        alg: alg.as_str(),
        kid,
        typ: "JWS",
        x5c,
    };
    kest_canon::python_dumps(&header, kest_canon::PythonSeparators::Compact)
}

/// Converts an ECDSA signature from ASN.1 DER (`SEQUENCE { r INTEGER, s INTEGER }`, what
/// AWS KMS and most HSMs return) to the fixed 64-byte `r || s` form JWS ES256 requires,
/// in its low-S form (KMS returns either; verifiers here accept only low S).
///
/// # Errors
/// [`CryptoError::SignatureLength`] when the DER is malformed or a value is wider than
/// 32 bytes, [`CryptoError::BadSignature`] when `r` or `s` is zero or not below the group
/// order.
pub fn es256_signature_from_der(der: &[u8]) -> Result<[u8; 64], CryptoError> {
    use pkcs8::der::{Decode as _, Reader as _, SliceReader};
    let malformed = || CryptoError::SignatureLength {
        alg: Algorithm::ES256,
        expected: 64,
        found: der.len(),
    };
    let mut reader = SliceReader::new(der).map_err(|_| malformed())?;
    let (r, s) = reader
        .sequence(|seq| {
            let r = pkcs8::der::asn1::UintRef::decode(seq)?;
            let s = pkcs8::der::asn1::UintRef::decode(seq)?;
            Ok::<_, pkcs8::der::Error>((r.as_bytes().to_vec(), s.as_bytes().to_vec()))
        })
        .map_err(|_| malformed())?;
    reader.finish().map_err(|_| malformed())?;
    let mut fixed = [0_u8; 64];
    for (value, half) in [(&r, 0_usize), (&s, 32)] {
        if value.len() > 32 {
            return Err(malformed());
        }
        let start = half + 32 - value.len();
        fixed
            .get_mut(start..half + 32)
            .ok_or_else(malformed)?
            .copy_from_slice(value);
    }
    crate::keys::es256_low_s(&fixed)
}

/// Signs `payload` and returns the compact serialization `header.payload.signature`.
///
/// The payload bytes are used as given; Kest passes canonical JSON.
///
/// # Errors
/// Whatever the signer reports.
pub fn sign_compact(signer: &dyn Signer, payload: &[u8]) -> Result<String, CryptoError> {
    let mut jws = signing_input(&signer.header_b64(), payload);
    let signature = signer.sign(jws.as_bytes())?;
    let alg = signer.algorithm();
    if signature.len() != alg.signature_len() {
        return Err(CryptoError::SignatureLength {
            alg,
            expected: alg.signature_len(),
            found: signature.len(),
        });
    }
    jws.push('.');
    jws.push_str(&kest_canon::b64url_encode(&signature));
    Ok(jws)
}

/// `header_b64 "." b64(payload)`, the bytes a JWS signature covers.
#[must_use]
pub fn signing_input(header_b64: &str, payload: &[u8]) -> String {
    let mut input = String::with_capacity(header_b64.len() + 1 + payload.len() * 4 / 3 + 90);
    input.push_str(header_b64);
    input.push('.');
    input.push_str(&kest_canon::b64url_encode(payload));
    input
}

/// The decoded protected header of a JWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwsHeader {
    /// `alg`, validated to be one this crate implements.
    pub alg: Algorithm,
    /// `kid`, if present.
    pub kid: Option<String>,
    /// `typ`, if present.
    pub typ: Option<String>,
    /// `x5c`, if present: base64 (not base64url) DER certificates, leaf first.
    pub x5c: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
}

impl JwsHeader {
    /// Parses the JSON text of a protected header.
    ///
    /// Duplicate members are rejected (two `alg`s could be read differently by different
    /// verifiers), as is `crit`: no extension is understood, so none may be required. The
    /// header must be an object nested no deeper than [`kest_canon::MAX_DEPTH`].
    ///
    /// # Errors
    /// [`CryptoError::Header`], [`CryptoError::AlgNone`] or
    /// [`CryptoError::UnsupportedAlgorithm`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, CryptoError> {
        // serde would also read a struct from a JSON array; a header is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(CryptoError::Header {
                reason: "the header is not a JSON object".into(),
            });
        }
        // Members this verifier ignores are skipped without depth limit by serde.
        kest_canon::check_nesting(bytes, kest_canon::MAX_DEPTH).map_err(|error| {
            CryptoError::Header {
                reason: error.to_string(),
            }
        })?;
        let raw: RawHeader =
            serde_json::from_slice(bytes).map_err(|error| CryptoError::Header {
                reason: kest_shorten(&error.to_string()),
            })?;
        if raw.crit.is_some() {
            return Err(CryptoError::Header {
                reason: "`crit` names extensions this verifier does not understand".into(),
            });
        }
        if raw
            .x5c
            .as_ref()
            .is_some_and(|chain| chain.is_empty() || chain.len() > 8)
        {
            return Err(CryptoError::Header {
                reason: "`x5c` must hold 1 to 8 certificates".into(),
            });
        }
        Ok(Self {
            alg: Algorithm::from_header(&raw.alg)?,
            kid: raw.kid,
            typ: raw.typ,
            x5c: raw.x5c,
        })
    }
}

/// A parsed, not yet verified, JWS compact serialization.
#[derive(Debug, Clone)]
pub struct CompactJws<'a> {
    text: &'a str,
    signing_input_len: usize,
    header: JwsHeader,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    /// Splits and decodes a compact JWS. Checks its shape, header and encoding, not its
    /// signature: call [`CompactJws::verify_with`] for that.
    ///
    /// Segments must be unpadded base64url with no stray bits, so a signed entry has
    /// exactly one spelling, and therefore exactly one hash.
    ///
    /// # Errors
    /// [`CryptoError::Segments`], [`CryptoError::Encoding`], [`CryptoError::Header`],
    /// [`CryptoError::AlgNone`], [`CryptoError::UnsupportedAlgorithm`] or
    /// [`CryptoError::SignatureLength`].
    pub fn parse(text: &'a str) -> Result<Self, CryptoError> {
        if text.len() > MAX_JWS_BYTES {
            return Err(CryptoError::Header {
                reason: format!(
                    "the JWS is {} bytes, over the limit of {MAX_JWS_BYTES}",
                    text.len()
                ),
            });
        }
        let mut parts = text.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Segments {
                found: text.split('.').count(),
            });
        };
        let header_bytes = kest_canon::b64url_decode_unpadded(header_b64, "JWS header")?;
        let header = JwsHeader::from_json(&header_bytes)?;
        let payload = kest_canon::b64url_decode_unpadded(payload_b64, "JWS payload")?;
        let signature = kest_canon::b64url_decode_unpadded(signature_b64, "JWS signature")?;
        if signature.len() != header.alg.signature_len() {
            return Err(CryptoError::SignatureLength {
                alg: header.alg,
                expected: header.alg.signature_len(),
                found: signature.len(),
            });
        }
        Ok(Self {
            text,
            signing_input_len: header_b64.len() + 1 + payload_b64.len(),
            header,
            payload,
            signature,
        })
    }

    /// The whole compact serialization.
    #[must_use]
    pub const fn as_str(&self) -> &'a str {
        self.text
    }

    /// The protected header.
    #[must_use]
    pub const fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The decoded payload bytes.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Takes the decoded payload bytes.
    #[must_use]
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The bytes the signature covers.
    #[must_use]
    pub fn signing_input(&self) -> &'a str {
        self.text.get(..self.signing_input_len).unwrap_or_default()
    }

    /// The decoded signature.
    #[must_use]
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verifies the signature with `key`, after checking that the header's `alg` is the
    /// key's algorithm (so an ES256 header cannot be checked against an Ed25519 key, nor
    /// the reverse).
    ///
    /// # Errors
    /// [`CryptoError::AlgorithmMismatch`] or [`CryptoError::BadSignature`].
    pub fn verify_with(&self, key: &VerifyingKey) -> Result<(), CryptoError> {
        verify_parts(&self.header, self.signing_input(), &self.signature, key)
    }
}

/// Verifies a signature given its already decoded parts.
///
/// # Errors
/// [`CryptoError::AlgorithmMismatch`], [`CryptoError::SignatureLength`] or
/// [`CryptoError::BadSignature`].
pub fn verify_parts(
    header: &JwsHeader,
    signing_input: &str,
    signature: &[u8],
    key: &VerifyingKey,
) -> Result<(), CryptoError> {
    if header.alg != key.algorithm() {
        return Err(CryptoError::AlgorithmMismatch {
            header: header.alg.as_str().to_owned(),
            key: key.algorithm(),
        });
    }
    key.verify(signing_input.as_bytes(), signature)
}
