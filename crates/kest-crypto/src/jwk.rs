//! JSON Web Keys (RFC 7517), their thumbprints (RFC 7638) and key sets.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::CryptoError;

/// The largest JWK or JWKS text accepted, so a hostile document cannot exhaust memory.
pub const MAX_JWK_BYTES: usize = 256 * 1024;

/// A public JSON Web Key.
///
/// Only the members Kest uses are modelled; others are ignored when reading, including a
/// private `d` (a private key is read as [`PrivateJwk`], which keeps `d` apart from the
/// public members so that a value of this type can never carry a secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP` or `EC`.
    pub kty: String,
    /// Curve: `Ed25519` or `P-256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key (OKP) or x coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use (`sig`).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    /// Permitted operations (`verify`, `sign`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
}

/// A private JSON Web Key: the public members and the secret `d`.
///
/// Not `Clone` and not comparable; `d` is wiped on drop and never shown by `Debug`, and
/// the JSON text [`PrivateJwk::to_json`] returns is wiped too.
#[derive(Serialize)]
pub struct PrivateJwk {
    /// The public members.
    #[serde(flatten)]
    pub public: Jwk,
    /// The private key, base64url.
    pub d: SecretString,
}

impl fmt::Debug for PrivateJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateJwk")
            .field("public", &self.public)
            .field("d", &"[secret key elided]")
            .finish()
    }
}

impl PrivateJwk {
    /// Parses a private JWK from JSON text.
    ///
    /// # Errors
    /// [`CryptoError::InvalidJwk`] when the text is too large, not JSON, not a JWK, or has
    /// no `d`.
    pub fn from_json(text: &str) -> Result<Self, CryptoError> {
        #[derive(Deserialize)]
        struct Members {
            #[serde(flatten)]
            public: Jwk,
            d: Option<SecretString>,
        }
        check_size(text, "JWK")?;
        let members: Members =
            serde_json::from_str(text).map_err(|error| CryptoError::InvalidJwk {
                reason: error.to_string(),
            })?;
        let d = members.d.ok_or_else(|| CryptoError::InvalidJwk {
            reason: "a private JWK needs `d`".into(),
        })?;
        Ok(Self {
            public: members.public,
            d,
        })
    }

    /// The JWK as compact JSON text, in a buffer that is wiped on drop.
    #[must_use]
    pub fn to_json(&self) -> Zeroizing<String> {
        // Serializing plain strings and options cannot fail.
        Zeroizing::new(serde_json::to_string(self).unwrap_or_default())
    }
}

impl Jwk {
    /// Parses a JWK from JSON text.
    ///
    /// # Errors
    /// [`CryptoError::InvalidJwk`] when the text is too large, not JSON or not a JWK.
    pub fn from_json(text: &str) -> Result<Self, CryptoError> {
        check_size(text, "JWK")?;
        serde_json::from_str(text).map_err(|error| CryptoError::InvalidJwk {
            reason: error.to_string(),
        })
    }

    /// The JWK as compact JSON text.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing plain strings and options cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks that the JWK may verify signatures of `alg`: `use`, when present, is `sig`;
    /// `key_ops`, when present, includes `verify`; `alg`, when present, is `alg`. A key
    /// published for encryption must not be accepted as a signing key, even if its bytes
    /// would verify.
    ///
    /// # Errors
    /// [`CryptoError::NotASigningKey`] saying which member declares otherwise.
    pub fn check_signing_use(&self, alg: crate::Algorithm) -> Result<(), CryptoError> {
        let refuse = |reason: String| CryptoError::NotASigningKey {
            kid: self.kid.as_deref().map(crate::alg::kest_shorten),
            reason,
        };
        if let Some(key_use) = self.key_use.as_deref().filter(|u| *u != "sig") {
            return Err(refuse(format!(
                "`use` is `{}`",
                crate::alg::kest_shorten(key_use)
            )));
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err(refuse("`key_ops` does not include `verify`".into()));
        }
        if let Some(declared) = self.alg.as_deref().filter(|a| *a != alg.as_str()) {
            return Err(refuse(format!(
                "`alg` is `{}`, the key verifies {alg}",
                crate::alg::kest_shorten(declared)
            )));
        }
        Ok(())
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required public members in
    /// canonical JSON.
    ///
    /// # Errors
    /// [`CryptoError::UnsupportedKeyType`] or [`CryptoError::InvalidJwk`] when the required
    /// members are missing.
    pub fn thumbprint(&self) -> Result<String, CryptoError> {
        crate::VerifyingKey::from_jwk(self)?;
        Ok(self.thumbprint_unchecked())
    }

    /// The thumbprint of whatever members are present, for keys already validated.
    pub(crate) fn thumbprint_unchecked(&self) -> String {
        let mut members = BTreeMap::new();
        members.insert("kty", self.kty.as_str());
        if let Some(crv) = &self.crv {
            members.insert("crv", crv);
        }
        if let Some(x) = &self.x {
            members.insert("x", x);
        }
        if self.kty == "EC"
            && let Some(y) = &self.y
        {
            members.insert("y", y);
        }
        let canonical = kest_canon::jcs_bytes(&members).unwrap_or_default();
        kest_canon::b64url_encode(kest_canon::sha256(&canonical).as_bytes())
    }
}

/// A JWK Set: `{"keys": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWK Set from JSON text.
    ///
    /// # Errors
    /// [`CryptoError::InvalidJwk`] when the text is too large, not JSON or not a JWK Set.
    pub fn from_json(text: &str) -> Result<Self, CryptoError> {
        check_size(text, "JWK Set")?;
        serde_json::from_str(text).map_err(|error| CryptoError::InvalidJwk {
            reason: format!("JWK Set: {error}"),
        })
    }
}

fn check_size(text: &str, what: &str) -> Result<(), CryptoError> {
    if text.len() > MAX_JWK_BYTES {
        return Err(CryptoError::InvalidJwk {
            reason: format!(
                "{what} is {} bytes, over the limit of {MAX_JWK_BYTES}",
                text.len()
            ),
        });
    }
    Ok(())
}

/// A string holding secret material: wiped on drop, redacted in `Debug`, not `Display`,
/// and neither `Clone` nor comparable, so that it is not copied or leaked by a timing
/// comparison by accident.
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: String) -> Self {
        Self(Zeroizing::new(secret))
    }

    /// The secret itself. Named so that every use is easy to find in review.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret elided]")
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}
