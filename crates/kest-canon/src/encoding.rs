//! SHA-256, hex and base64url helpers.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD, URL_SAFE_NO_PAD_INDIFFERENT};
use sha2::{Digest as _, Sha256};

use crate::error::CanonError;

/// Encodes bytes as base64url without padding (RFC 4648 §5), as JWS requires.
#[must_use]
pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the base64url of `bytes`, without padding, to `out`.
///
/// ```
/// let mut text = String::from("x.");
/// kest_canon::b64url_encode_to(b"hi", &mut text);
/// assert_eq!(text, "x.aGk");
/// ```
pub fn b64url_encode_to(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Encodes bytes as base64url with `=` padding, as the Python package writes
/// `kest.passport_z`.
#[must_use]
pub fn b64url_encode_padded(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// Decodes base64url, padded or not.
///
/// Trailing bits that a canonical encoder would have left zero are rejected, so one byte
/// string has exactly one unpadded encoding.
///
/// ```
/// assert_eq!(kest_canon::b64url_decode("aGk", "example").unwrap(), b"hi");
/// assert_eq!(kest_canon::b64url_decode("aGk=", "example").unwrap(), b"hi");
/// assert!(kest_canon::b64url_decode("aGk+", "example").is_err());
/// ```
///
/// # Errors
/// [`CanonError::Base64`] naming `what` when the text is not base64url.
pub fn b64url_decode(text: &str, what: &'static str) -> Result<Vec<u8>, CanonError> {
    URL_SAFE_NO_PAD_INDIFFERENT
        .decode(text)
        .map_err(|error| base64_error(what, &error))
}

/// Decodes base64url that must not carry padding, as in a JWS compact serialization.
///
/// # Errors
/// [`CanonError::Base64`] naming `what` when the text is not unpadded base64url.
pub fn b64url_decode_unpadded(text: &str, what: &'static str) -> Result<Vec<u8>, CanonError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|error| base64_error(what, &error))
}

fn base64_error(what: &'static str, error: &base64::DecodeError) -> CanonError {
    CanonError::Base64 {
        what,
        message: error.to_string(),
    }
}

/// Lowercase hex of `bytes`.
#[must_use]
pub fn hex_encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The SHA-256 of `bytes`.
#[must_use]
pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(Sha256::digest(bytes).into())
}

/// Lowercase hex of the SHA-256 of `bytes`: the form Kest uses for entry hashes.
///
/// ```
/// assert_eq!(
///     kest_canon::sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256(bytes).to_hex()
}

/// A SHA-256 digest. Displays and parses as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Wraps raw digest bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Parses 64 hex characters. Only lowercase is accepted: Kest writes lowercase, and a
    /// second spelling of the same hash would let two strings name one entry.
    ///
    /// # Errors
    /// [`CanonError::Hex`] for the wrong length, uppercase or non-hex characters.
    pub fn from_hex(text: &str) -> Result<Self, CanonError> {
        let bad = |message: &str| CanonError::Hex {
            what: "SHA-256 digest",
            message: message.to_owned(),
        };
        if text.len() != 64 {
            return Err(bad(&format!(
                "expected 64 characters, found {}",
                text.len()
            )));
        }
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("uppercase hex digits are not accepted"));
        }
        let mut bytes = [0_u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|error| bad(&error.to_string()))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0_u8; 64];
        hex::encode_to_slice(self.0, &mut buffer).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buffer).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = CanonError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_hex(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_and_unpadded_decode_the_same() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\xfd"] {
            let unpadded = b64url_encode(bytes);
            let padded = b64url_encode_padded(bytes);
            assert!(!unpadded.contains('='));
            assert_eq!(padded.len() % 4, 0);
            assert_eq!(b64url_decode(&unpadded, "t").unwrap(), bytes);
            assert_eq!(b64url_decode(&padded, "t").unwrap(), bytes);
            assert_eq!(b64url_decode_unpadded(&unpadded, "t").unwrap(), bytes);
        }
        assert!(b64url_decode_unpadded("Zm8=", "t").is_err());
    }

    #[test]
    fn rejects_standard_alphabet_and_trailing_bits() {
        assert!(b64url_decode("+/8", "t").is_err());
        // "Zh" decodes to 'f' only if its two trailing bits are ignored.
        assert!(b64url_decode("Zh", "t").is_err());
        let error = b64url_decode("a$", "payload").unwrap_err();
        assert!(error.to_string().contains("payload"), "{error}");
    }

    #[test]
    fn digest_hex_round_trip() {
        let digest = sha256(b"kest");
        let hex = digest.to_hex();
        assert_eq!(hex, digest.to_string());
        assert_eq!(Sha256Digest::from_hex(&hex).unwrap(), digest);
        assert!(Sha256Digest::from_hex(&hex.to_uppercase()).is_err());
        assert!(Sha256Digest::from_hex(&hex[..63]).is_err());
        assert!(Sha256Digest::from_hex(&format!("{}g", &hex[..63])).is_err());
    }
}
