//! Which principals a source of keys may speak for.

use std::fmt;
use std::str::FromStr;

use crate::CryptoError;

/// The principals a source of keys is trusted for: one principal, or every SPIFFE ID
/// under a path prefix.
///
/// A key is only as trustworthy as the source that vouches for it, and a source speaks
/// only for whom it was trusted for. A peer's published JWK Set is trusted for that peer;
/// if it also lists a key for another principal, that key is never used. The text form
/// is the principal itself, or a SPIFFE ID prefix ending in `/*`:
///
/// ```
/// use kest_crypto::PrincipalBinding;
///
/// let one: PrincipalBinding = "spiffe://example.org/billing".parse()?;
/// assert!(one.permits("spiffe://example.org/billing"));
/// assert!(!one.permits("spiffe://example.org/billing/x"));
///
/// let team: PrincipalBinding = "spiffe://example.org/payments/*".parse()?;
/// assert!(team.permits("spiffe://example.org/payments/ledger"));
/// assert!(!team.permits("spiffe://example.org/payments"));
/// assert!(!team.permits("spiffe://example.org/paymentsX/ledger"));
///
/// // A wildcard anywhere else, or a prefix that is not a SPIFFE ID, is refused.
/// assert!("spiffe://example.org/*/ledger".parse::<PrincipalBinding>().is_err());
/// assert!("https://example.org/*".parse::<PrincipalBinding>().is_err());
/// # Ok::<(), kest_crypto::CryptoError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PrincipalBinding {
    /// Exactly this principal.
    Principal(String),
    /// Every SPIFFE ID that starts with this prefix (which ends in `/`) and continues
    /// past it.
    SpiffePrefix(String),
}

/// The longest binding accepted, in bytes.
const MAX_BINDING_BYTES: usize = 2048;

impl PrincipalBinding {
    /// A binding to exactly `principal`.
    ///
    /// # Errors
    /// [`CryptoError::InvalidBinding`] when `principal` is empty, too long, holds a control
    /// character or a `*`.
    pub fn principal(principal: impl Into<String>) -> Result<Self, CryptoError> {
        let principal = principal.into();
        check_text(&principal)?;
        if principal.contains('*') {
            return Err(invalid(
                &principal,
                "a `*` is only allowed as the last segment of a SPIFFE ID prefix (`spiffe://domain/path/*`)",
            ));
        }
        Ok(Self::Principal(principal))
    }

    /// Whether a key from a source with this binding may speak for `principal`.
    #[must_use]
    pub fn permits(&self, principal: &str) -> bool {
        match self {
            Self::Principal(bound) => bound == principal,
            Self::SpiffePrefix(prefix) => principal
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| !rest.is_empty()),
        }
    }
}

fn invalid(text: &str, reason: &'static str) -> CryptoError {
    CryptoError::InvalidBinding {
        binding: kest_canon::escape_untrusted(text, 80),
        reason,
    }
}

fn check_text(text: &str) -> Result<(), CryptoError> {
    if text.is_empty() {
        return Err(invalid(text, "it is empty"));
    }
    if text.len() > MAX_BINDING_BYTES {
        return Err(invalid(text, "it is longer than 2048 bytes"));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(text, "it holds a control character"));
    }
    Ok(())
}

impl FromStr for PrincipalBinding {
    type Err = CryptoError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        check_text(text)?;
        let Some(prefix) = text.strip_suffix('*') else {
            return Self::principal(text);
        };
        if prefix.contains('*') {
            return Err(invalid(
                text,
                "only one `*` is allowed, as the last segment",
            ));
        }
        if !prefix.ends_with('/') {
            return Err(invalid(text, "a prefix ends in `/*`"));
        }
        let Some(path) = prefix.strip_prefix("spiffe://") else {
            return Err(invalid(
                text,
                "only SPIFFE IDs may be bound by prefix (`spiffe://domain/path/*`)",
            ));
        };
        let domain = path.split('/').next().unwrap_or_default();
        if domain.is_empty() {
            return Err(invalid(text, "the prefix names no trust domain"));
        }
        if path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err(invalid(text, "the prefix holds a `.` or `..` segment"));
        }
        Ok(Self::SpiffePrefix(prefix.to_owned()))
    }
}

impl fmt::Display for PrincipalBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Principal(principal) => {
                f.write_str(&kest_canon::escape_untrusted(principal, 256))
            }
            Self::SpiffePrefix(prefix) => {
                write!(f, "{}*", kest_canon::escape_untrusted(prefix, 256))
            }
        }
    }
}

impl fmt::Debug for PrincipalBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrincipalBinding({self})")
    }
}

/// Whether a JWK's `kid` reads as the name of a principal rather than of a key: it holds
/// a `:`, as URIs do (`spiffe://…`, `https://…`, `arn:…`, `urn:…`). Key ids proper (RFC
/// 7638 thumbprints, which are base64url, or names such as `key-2026`) do not.
pub(crate) fn names_a_principal(kid: &str) -> bool {
    kid.contains(':')
}
