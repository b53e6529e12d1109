//! The provider trait.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use kest_crypto::{Algorithm, Jwk};
use kest_passport::{Entry, SignedEntry, UnsignedEntry};
use serde::Serialize;

use crate::IdentityError;

/// Who a provider signs as, and with which key: what `kest whoami` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityInfo {
    /// The provider: `local`, `static`, `mock`, `oidc`, `spiffe`, `aws-kms`,
    /// `bedrock-agent`, or `lazy(...)`.
    pub provider: String,
    /// The workload id written as `labels.principal`.
    pub workload_id: String,
    /// The JWS algorithm.
    pub alg: Algorithm,
    /// The header `kid`.
    pub kid: String,
    /// The public key.
    pub jwk: Jwk,
    /// The token issuer, for providers whose identity comes from a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The certificate chain sent in the header (`x5c`), for certified keys.
    #[serde(skip_serializing)]
    pub x5c: Option<Vec<String>>,
}

/// A workload identity that signs lineage entries.
///
/// Every provider fails closed: when it cannot say who it is or cannot sign, it returns
/// an error, and no entry is made. Signing names the key it expects (`kid`), so that a
/// provider whose key rotates (SPIFFE) never signs with one key under another's name.
#[async_trait]
pub trait IdentityProvider: Send + Sync + fmt::Debug {
    /// The provider's name.
    fn name(&self) -> &str;

    /// The current identity and key.
    ///
    /// # Errors
    /// An [`IdentityError`] when the identity cannot be established.
    async fn describe(&self) -> Result<IdentityInfo, IdentityError>;

    /// Signs a JWS signing input with the key named `kid`.
    ///
    /// # Errors
    /// [`IdentityError::KeyChanged`] when `kid` is no longer the current key, or whatever
    /// stops the signature being made.
    async fn sign(&self, kid: &str, signing_input: &[u8]) -> Result<Vec<u8>, IdentityError>;

    /// Canonicalizes, signs and assembles an entry, retrying once if the key rotated in
    /// between.
    ///
    /// # Errors
    /// As [`IdentityProvider::describe`] and [`IdentityProvider::sign`].
    async fn sign_entry(&self, entry: Entry) -> Result<SignedEntry, IdentityError> {
        let info = self.describe().await?;
        self.sign_entry_as(&info, entry).await
    }

    /// As [`IdentityProvider::sign_entry`], with the identity already described (the hook
    /// describes it before the call runs). If the key rotated since, it describes it again
    /// and retries once.
    ///
    /// # Errors
    /// As [`IdentityProvider::sign_entry`].
    async fn sign_entry_as(
        &self,
        info: &IdentityInfo,
        entry: Entry,
    ) -> Result<SignedEntry, IdentityError> {
        let unsigned = UnsignedEntry::with_chain(entry, info.alg, &info.kid, info.x5c.as_deref())
            .map_err(IdentityError::Entry)?;
        match self.sign(&info.kid, unsigned.signing_input()).await {
            Ok(signature) => return unsigned.finish(&signature).map_err(IdentityError::Entry),
            Err(IdentityError::KeyChanged { .. }) => {}
            Err(error) => return Err(error),
        }
        // The key rotated after `info` was taken: once more with the current key.
        let info = self.describe().await?;
        let unsigned = UnsignedEntry::with_chain(
            unsigned.into_entry(),
            info.alg,
            &info.kid,
            info.x5c.as_deref(),
        )
        .map_err(IdentityError::Entry)?;
        let signature = self.sign(&info.kid, unsigned.signing_input()).await?;
        unsigned.finish(&signature).map_err(IdentityError::Entry)
    }
}

#[async_trait]
impl<P: IdentityProvider + ?Sized> IdentityProvider for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
        (**self).describe().await
    }

    async fn sign(&self, kid: &str, signing_input: &[u8]) -> Result<Vec<u8>, IdentityError> {
        (**self).sign(kid, signing_input).await
    }

    async fn sign_entry(&self, entry: Entry) -> Result<SignedEntry, IdentityError> {
        (**self).sign_entry(entry).await
    }

    async fn sign_entry_as(
        &self,
        info: &IdentityInfo,
        entry: Entry,
    ) -> Result<SignedEntry, IdentityError> {
        (**self).sign_entry_as(info, entry).await
    }
}

/// Refuses to sign under a `kid` that is not the current one.
pub(crate) fn check_kid(expected: &str, current: &str) -> Result<(), IdentityError> {
    if expected == current {
        Ok(())
    } else {
        Err(IdentityError::KeyChanged {
            expected: expected.to_owned(),
            current: current.to_owned(),
        })
    }
}
