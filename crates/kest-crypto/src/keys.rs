//! Signing and verifying keys.

use std::fmt;

use pkcs8::der::Decode as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{self as ring_sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use zeroize::Zeroizing;

use crate::jwk::{Jwk, PrivateJwk, SecretString};
use crate::{Algorithm, CryptoError, KeyDefect};

/// OID 1.3.101.112, Ed25519.
const OID_ED25519: &str = "1.3.101.112";
/// OID 1.2.840.10045.2.1, an elliptic-curve public key.
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// The named curve P-256 (prime256v1, RFC 5480).
const OID_P256: &str = "1.2.840.10045.3.1.7";

/// A private key that signs JWS entries.
///
/// It redacts itself in `Debug`, is not `Clone`, and wipes the key bytes it owns when
/// dropped (the Ed25519 seed, the P-256 scalar and PKCS#8 buffers).
///
/// `ring` keeps its own expanded copy of the key inside its key-pair type and does not wipe
/// it on drop; nothing in safe Rust can reach that copy. Treat process memory as sensitive
/// accordingly, or sign through a provider that keeps the key outside the process (KMS).
pub struct SigningKey {
    inner: Inner,
    public: VerifyingKey,
}

enum Inner {
    Ed25519 {
        seed: Zeroizing<[u8; 32]>,
        pair: Ed25519KeyPair,
    },
    P256 {
        scalar: Zeroizing<Vec<u8>>,
        pair: EcdsaKeyPair,
        rng: SystemRandom,
    },
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.algorithm())
            .field("thumbprint", &self.public.thumbprint())
            .field("secret", &"[secret key elided]")
            .finish()
    }
}

impl SigningKey {
    /// A fresh Ed25519 key from the operating system's random number generator.
    ///
    /// # Errors
    /// [`CryptoError::Random`] when the generator fails.
    pub fn generate_ed25519() -> Result<Self, CryptoError> {
        let mut seed = Zeroizing::new([0_u8; 32]);
        SystemRandom::new()
            .fill(seed.as_mut())
            .map_err(|_| CryptoError::Random)?;
        Self::from_ed25519_seed(seed.as_ref())
    }

    /// A fresh P-256 key, for tests and for providers that mint their own keys.
    ///
    /// # Errors
    /// [`CryptoError::Random`] when the generator fails.
    pub fn generate_p256() -> Result<Self, CryptoError> {
        let rng = SystemRandom::new();
        let document =
            EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| CryptoError::Random)?;
        let der = Zeroizing::new(document.as_ref().to_vec());
        Self::from_pkcs8_der(&der)
    }

    /// An Ed25519 key from its 32-byte seed (the RFC 8032 private key).
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when `seed` is not 32 bytes.
    pub fn from_ed25519_seed(seed: &[u8]) -> Result<Self, CryptoError> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| CryptoError::InvalidKey {
            format: "Ed25519 seed",
            reason: format!("expected 32 bytes, found {}", seed.len()),
        })?;
        let seed = Zeroizing::new(seed);
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).map_err(|error| {
            CryptoError::InvalidKey {
                format: "Ed25519 seed",
                reason: error.to_string(),
            }
        })?;
        let public = VerifyingKey::from_ed25519_bytes(pair.public_key().as_ref())?;
        Ok(Self {
            inner: Inner::Ed25519 { seed, pair },
            public,
        })
    }

    /// An Ed25519 key from the hex of its seed, as `kest keygen --seed-hex` takes it.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when the text is not 64 hex characters.
    pub fn from_ed25519_seed_hex(hex_seed: &str) -> Result<Self, CryptoError> {
        let mut seed = Zeroizing::new([0_u8; 32]);
        hex::decode_to_slice(hex_seed.trim(), seed.as_mut()).map_err(|error| {
            CryptoError::InvalidKey {
                format: "Ed25519 seed",
                reason: format!("expected 64 hex characters: {error}"),
            }
        })?;
        Self::from_ed25519_seed(seed.as_ref())
    }

    /// A key from a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`), Ed25519 or P-256.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when the PEM, the PKCS#8 structure or the key is invalid.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CryptoError> {
        let (label, document) =
            pkcs8::SecretDocument::from_pem(pem).map_err(|error| CryptoError::InvalidKey {
                format: "PKCS#8 PEM",
                reason: error.to_string(),
            })?;
        if label != "PRIVATE KEY" {
            return Err(CryptoError::InvalidKey {
                format: "PKCS#8 PEM",
                reason: format!("expected a `PRIVATE KEY` block, found `{label}`"),
            });
        }
        Self::from_pkcs8_der(document.as_bytes())
    }

    /// A key from PKCS#8 DER bytes, Ed25519 or P-256.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when the structure or the key is invalid.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        let invalid = |reason: String| CryptoError::InvalidKey {
            format: "PKCS#8",
            reason,
        };
        let info = pkcs8::PrivateKeyInfoRef::try_from(der).map_err(|e| invalid(e.to_string()))?;
        let oid = info.algorithm.oid.to_string();
        match oid.as_str() {
            OID_ED25519 => {
                // The private key is itself an OCTET STRING holding the 32-byte seed.
                let seed =
                    <&pkcs8::der::asn1::OctetStringRef>::from_der(info.private_key.as_bytes())
                        .map_err(|e| invalid(format!("Ed25519 private key: {e}")))?;
                let key = Self::from_ed25519_seed(seed.as_bytes())?;
                if let Some(public) = &info.public_key
                    && public.raw_bytes() != key.public.as_bytes()
                {
                    return Err(invalid("the public key does not match the seed".into()));
                }
                Ok(key)
            }
            OID_EC_PUBLIC_KEY => {
                let rng = SystemRandom::new();
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                        .map_err(|e| invalid(format!("P-256: {e}")))?;
                let scalar = p256_scalar_from_pkcs8(info.private_key.as_bytes())
                    .ok_or_else(|| invalid("P-256: cannot read the private scalar".into()))?;
                let public = VerifyingKey::from_p256_uncompressed(pair.public_key().as_ref())?;
                Ok(Self {
                    inner: Inner::P256 { scalar, pair, rng },
                    public,
                })
            }
            other => Err(invalid(format!("unsupported key algorithm OID {other}"))),
        }
    }

    /// A key from a private JWK: OKP/Ed25519 (RFC 8037) or EC/P-256 (RFC 7518).
    ///
    /// # Errors
    /// [`CryptoError::InvalidJwk`] or [`CryptoError::InvalidKey`] when the key members
    /// are invalid or do not match `d`.
    pub fn from_jwk(private: &PrivateJwk) -> Result<Self, CryptoError> {
        let jwk = &private.public;
        let d = Zeroizing::new(kest_canon::b64url_decode(private.d.expose(), "JWK `d`")?);
        let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => Self::from_ed25519_seed(&d)?,
            ("EC", Some("P-256")) => {
                let public = VerifyingKey::from_jwk(jwk)?;
                let rng = SystemRandom::new();
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &d,
                    public.as_bytes(),
                    &rng,
                )
                .map_err(|e| CryptoError::InvalidKey {
                    format: "JWK",
                    reason: format!("P-256: {e}"),
                })?;
                Self {
                    inner: Inner::P256 {
                        scalar: Zeroizing::new(d.to_vec()),
                        pair,
                        rng,
                    },
                    public,
                }
            }
            (kty, crv) => return Err(unsupported(kty, crv)),
        };
        if jwk.x.is_some() && VerifyingKey::from_jwk(jwk)? != key.public {
            return Err(CryptoError::InvalidKey {
                format: "JWK",
                reason: "the public members do not match `d`".into(),
            });
        }
        Ok(key)
    }

    /// A key from the JSON text of a private JWK.
    ///
    /// # Errors
    /// As [`SigningKey::from_jwk`], or [`CryptoError::InvalidJwk`] when the text is not a JWK.
    pub fn from_jwk_json(text: &str) -> Result<Self, CryptoError> {
        Self::from_jwk(&PrivateJwk::from_json(text)?)
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// The public half.
    #[must_use]
    pub const fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Signs `message`. Ed25519 signatures are deterministic; P-256 ones are randomized.
    ///
    /// # Errors
    /// [`CryptoError::Random`] when P-256 signing cannot get randomness.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::Ed25519 { pair, .. } => Ok(pair.sign(message).as_ref().to_vec()),
            Inner::P256 { pair, rng, .. } => {
                let signature = pair.sign(rng, message).map_err(|_| CryptoError::Random)?;
                es256_low_s(signature.as_ref()).map(|fixed| fixed.to_vec())
            }
        }
    }

    /// The private JWK, with `kid` set to the RFC 7638 thumbprint.
    ///
    /// The result holds the secret in `d`; it zeroizes itself and redacts `d` in `Debug`.
    #[must_use]
    pub fn to_private_jwk(&self) -> PrivateJwk {
        let d = match &self.inner {
            Inner::Ed25519 { seed, .. } => kest_canon::b64url_encode(seed.as_ref()),
            Inner::P256 { scalar, .. } => kest_canon::b64url_encode(scalar),
        };
        PrivateJwk {
            public: self.public.to_jwk(),
            d: SecretString::new(d),
        }
    }
}

/// A public key that verifies JWS entries. Cheap to clone; compares by value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifyingKey(PublicBytes);

#[derive(Clone, PartialEq, Eq, Hash)]
enum PublicBytes {
    Ed25519([u8; 32]),
    /// SEC1 uncompressed: `0x04 || x || y`.
    P256([u8; 65]),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.algorithm())
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl VerifyingKey {
    /// An Ed25519 public key from its 32 bytes.
    ///
    /// The point is checked as it is loaded: it must be on the curve, encoded canonically
    /// (the y coordinate reduced, no sign bit on x = 0) and in the prime-order subgroup.
    /// A small-order key would let one constant signature (R = identity, S = 0) "verify"
    /// for every message; a key with a torsion component, or spelled two ways, has no
    /// honest use. Keys made from a seed always pass.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] for the wrong length, [`CryptoError::DegenerateKey`]
    /// for a point that fails a check.
    pub fn from_ed25519_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::InvalidKey {
            format: "Ed25519 public key",
            reason: format!("expected 32 bytes, found {}", bytes.len()),
        })?;
        let degenerate = |defect| CryptoError::DegenerateKey {
            alg: Algorithm::EdDSA,
            defect,
        };
        let point = CompressedEdwardsY(bytes)
            .decompress()
            .ok_or_else(|| degenerate(KeyDefect::NotOnCurve))?;
        if point.compress().to_bytes() != bytes {
            return Err(degenerate(KeyDefect::NonCanonical));
        }
        if point.is_small_order() {
            return Err(degenerate(KeyDefect::SmallOrder));
        }
        if !point.is_torsion_free() {
            return Err(degenerate(KeyDefect::TorsionComponent));
        }
        Ok(Self(PublicBytes::Ed25519(bytes)))
    }

    /// A P-256 public key from its SEC1 uncompressed form (65 bytes, leading `0x04`).
    ///
    /// The point must lie on the curve and not be the point at infinity.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] for the wrong length or a compressed point,
    /// [`CryptoError::DegenerateKey`] for a point off the curve.
    pub fn from_p256_uncompressed(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: [u8; 65] = bytes.try_into().map_err(|_| CryptoError::InvalidKey {
            format: "P-256 public key",
            reason: format!("expected 65 bytes, found {}", bytes.len()),
        })?;
        if bytes.first() != Some(&0x04) {
            return Err(CryptoError::InvalidKey {
                format: "P-256 public key",
                reason: "expected an uncompressed point (leading 0x04)".into(),
            });
        }
        // Identity is not encodable in 65 bytes, so the only way to fail is off the curve
        // (or a coordinate not reduced modulo p).
        p256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| CryptoError::DegenerateKey {
            alg: Algorithm::ES256,
            defect: KeyDefect::NotOnCurve,
        })?;
        Ok(Self(PublicBytes::P256(bytes)))
    }

    /// A public key from a DER `SubjectPublicKeyInfo` (RFC 5280), as AWS KMS
    /// `GetPublicKey` and X.509 certificates carry it: Ed25519, or EC on P-256.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] for bad DER, another algorithm or another curve.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        let invalid = |reason: String| CryptoError::InvalidKey {
            format: "SubjectPublicKeyInfo",
            reason,
        };
        let info = pkcs8::spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| invalid(e.to_string()))?;
        let bits = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| invalid("the key bit string has unused bits".into()))?;
        match info.algorithm.oid.to_string().as_str() {
            OID_ED25519 => Self::from_ed25519_bytes(bits),
            OID_EC_PUBLIC_KEY => {
                let curve = info
                    .algorithm
                    .parameters
                    .and_then(|any| any.decode_as::<pkcs8::der::asn1::ObjectIdentifier>().ok())
                    .map(|oid| oid.to_string());
                if curve.as_deref() != Some(OID_P256) {
                    return Err(invalid(format!(
                        "EC key on curve {}, expected P-256 ({OID_P256})",
                        curve.as_deref().unwrap_or("(unnamed)")
                    )));
                }
                Self::from_p256_uncompressed(bits)
            }
            other => Err(invalid(format!("unsupported key algorithm OID {other}"))),
        }
    }

    /// A public key from a JWK (OKP/Ed25519 or EC/P-256).
    ///
    /// # Errors
    /// [`CryptoError::InvalidJwk`] or [`CryptoError::UnsupportedKeyType`].
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, CryptoError> {
        fn member<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, CryptoError> {
            value.ok_or_else(|| CryptoError::InvalidJwk {
                reason: format!("missing `{name}`"),
            })
        }
        match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => {
                let x = kest_canon::b64url_decode(member("x", jwk.x.as_deref())?, "JWK `x`")?;
                Self::from_ed25519_bytes(&x)
            }
            ("EC", Some("P-256")) => {
                let x = kest_canon::b64url_decode(member("x", jwk.x.as_deref())?, "JWK `x`")?;
                let y = kest_canon::b64url_decode(member("y", jwk.y.as_deref())?, "JWK `y`")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(CryptoError::InvalidJwk {
                        reason: format!(
                            "P-256 coordinates are 32 bytes, found {} and {}",
                            x.len(),
                            y.len()
                        ),
                    });
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Self::from_p256_uncompressed(&point)
            }
            (kty, crv) => Err(unsupported(kty, crv)),
        }
    }

    /// The algorithm this key verifies.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        match self.0 {
            PublicBytes::Ed25519(_) => Algorithm::EdDSA,
            PublicBytes::P256(_) => Algorithm::ES256,
        }
    }

    /// The raw public key bytes (32 for Ed25519, 65 uncompressed for P-256).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            PublicBytes::Ed25519(bytes) => bytes,
            PublicBytes::P256(bytes) => bytes,
        }
    }

    /// The public JWK, with `kid` set to the RFC 7638 thumbprint.
    #[must_use]
    pub fn to_jwk(&self) -> Jwk {
        let mut jwk = self.jwk_members();
        jwk.kid = Some(self.thumbprint());
        jwk
    }

    /// The JWK members that define the key, without `kid`.
    fn jwk_members(&self) -> Jwk {
        match &self.0 {
            PublicBytes::Ed25519(bytes) => Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(kest_canon::b64url_encode(bytes)),
                ..Jwk::default()
            },
            PublicBytes::P256(bytes) => Jwk {
                kty: "EC".into(),
                crv: Some("P-256".into()),
                x: bytes.get(1..33).map(kest_canon::b64url_encode),
                y: bytes.get(33..65).map(kest_canon::b64url_encode),
                ..Jwk::default()
            },
        }
    }

    /// The RFC 7638 JWK thumbprint: base64url of the SHA-256 of the required members in
    /// canonical form.
    #[must_use]
    pub fn thumbprint(&self) -> String {
        self.jwk_members().thumbprint_unchecked()
    }

    /// Verifies `signature` over `message`.
    ///
    /// # Errors
    /// [`CryptoError::SignatureLength`] or [`CryptoError::BadSignature`].
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let alg = self.algorithm();
        if signature.len() != alg.signature_len() {
            return Err(CryptoError::SignatureLength {
                alg,
                expected: alg.signature_len(),
                found: signature.len(),
            });
        }
        let verifier: &'static dyn ring_sig::VerificationAlgorithm = match self.0 {
            PublicBytes::Ed25519(_) => return ed25519_verify(self.as_bytes(), message, signature),
            PublicBytes::P256(_) => {
                // (r, s) and (r, n − s) both verify; only the low-S spelling is accepted,
                // so nobody but the signer can make a second spelling of an entry (and a
                // second entry hash).
                if es256_is_high_s(signature)? {
                    return Err(CryptoError::HighS);
                }
                &ring_sig::ECDSA_P256_SHA256_FIXED
            }
        };
        ring_sig::UnparsedPublicKey::new(verifier, self.as_bytes())
            .verify(message, signature)
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// RFC 8032 Ed25519 verification of a 64-byte signature by a 32-byte key that passed the
/// key checks: ring's, or aws-lc's with the `aws-lc` feature. One function for both, so
/// that the verdict is decided in one place whichever backend is built.
fn ed25519_verify(key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
    #[cfg(feature = "aws-lc")]
    let verified =
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, key)
            .verify(message, signature);
    #[cfg(not(feature = "aws-lc"))]
    let verified =
        ring_sig::UnparsedPublicKey::new(&ring_sig::ED25519, key).verify(message, signature);
    verified.map_err(|_| CryptoError::BadSignature)
}

fn unsupported(kty: &str, crv: Option<&str>) -> CryptoError {
    CryptoError::UnsupportedKeyType {
        kty: crate::alg::kest_shorten(kty),
        crv: crate::alg::kest_shorten(crv.unwrap_or("-")),
    }
}

/// Reads the private scalar out of a SEC1 `ECPrivateKey` (RFC 5915):
/// `SEQUENCE { INTEGER 1, OCTET STRING privateKey, ... }`.
fn p256_scalar_from_pkcs8(ec_private_key: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use pkcs8::der::{Reader as _, SliceReader};
    let mut reader = SliceReader::new(ec_private_key).ok()?;
    let scalar = reader
        .sequence(|seq| {
            let _version: u8 = seq.decode()?;
            let scalar: &pkcs8::der::asn1::OctetStringRef = seq.decode()?;
            // The optional parameters and public key follow; they were checked by ring.
            seq.read_slice(seq.remaining_len())?;
            Ok::<_, pkcs8::der::Error>(scalar.as_bytes().to_vec())
        })
        .ok()?;
    (scalar.len() == 32).then(|| Zeroizing::new(scalar))
}

/// Reads a fixed-size ES256 signature `r || s`.
fn es256_signature(fixed: &[u8]) -> Result<p256::ecdsa::Signature, CryptoError> {
    p256::ecdsa::Signature::from_slice(fixed).map_err(|_| CryptoError::BadSignature)
}

/// Whether a fixed-size ES256 signature has the high S value of the two that verify.
fn es256_is_high_s(fixed: &[u8]) -> Result<bool, CryptoError> {
    Ok(es256_signature(fixed)?.normalize_s().is_some())
}

/// The low-S form of a fixed-size ES256 signature `r || s`: `s` is replaced by `n − s`
/// when it is above `n / 2`. Signers that do not normalize (ring, AWS KMS) go through this.
///
/// # Errors
/// [`CryptoError::BadSignature`] when `r` or `s` is zero or not below the group order.
pub(crate) fn es256_low_s(fixed: &[u8]) -> Result<[u8; 64], CryptoError> {
    let signature = es256_signature(fixed)?;
    let low = signature.normalize_s().unwrap_or(signature);
    let mut fixed = [0_u8; 64];
    for (slot, byte) in fixed.iter_mut().zip(low.to_bytes()) {
        *slot = byte;
    }
    Ok(fixed)
}
