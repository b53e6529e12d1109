//! JWS algorithms.

use std::fmt;

use crate::CryptoError;

/// A JWS signature algorithm this crate signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037). What Kest and the Python package sign with by default.
    EdDSA,
    /// ECDSA on P-256 with SHA-256 and fixed-size `r||s` signatures (RFC 7518 §3.4), for
    /// keys that come from SPIFFE X.509-SVIDs and AWS KMS.
    ES256,
}

impl Algorithm {
    /// The JWS `alg` name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
        }
    }

    /// The length of a signature in bytes.
    #[must_use]
    pub const fn signature_len(self) -> usize {
        64
    }

    /// Reads a header `alg`. `none` gets its own error: it is an attack, not a typo.
    ///
    /// # Errors
    /// [`CryptoError::AlgNone`] or [`CryptoError::UnsupportedAlgorithm`].
    pub fn from_header(alg: &str) -> Result<Self, CryptoError> {
        match alg {
            "EdDSA" => Ok(Self::EdDSA),
            "ES256" => Ok(Self::ES256),
            _ if alg.eq_ignore_ascii_case("none") => Err(CryptoError::AlgNone),
            _ => Err(CryptoError::UnsupportedAlgorithm {
                alg: kest_shorten(alg),
            }),
        }
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds and escapes attacker-controlled text quoted in errors.
pub(crate) fn kest_shorten(text: &str) -> String {
    kest_canon::escape_untrusted(text, 64)
}
