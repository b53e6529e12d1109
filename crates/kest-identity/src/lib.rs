//! Workload identities that sign Kest lineage entries.
//!
//! An entry is only as trustworthy as the key that signed it. This crate gets that key,
//! and the workload id written next to it, from where deployments keep them: an explicit
//! key, an OIDC token, the SPIFFE Workload API, or AWS KMS. Every provider implements
//! [`IdentityProvider`] and fails closed: when it cannot say who it is, or cannot sign,
//! it returns an [`IdentityError`] and no entry is made.
//!
//! ```
//! use kest_crypto::StaticKeyResolver;
//! use kest_identity::{IdentityProvider, MockIdentity};
//! use kest_passport::{EntryBuilder, Passport, Verifier};
//! use kest_trust::WeakestLink;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let identity = MockIdentity::new("spiffe://example.org/agent")?;
//! let info = identity.describe().await?;
//! assert_eq!(info.workload_id, "spiffe://example.org/agent");
//!
//! let mut passport = Passport::new();
//! kest_identity::append(&mut passport, EntryBuilder::new("summarize"), &identity, &WeakestLink).await?;
//!
//! let resolver = StaticKeyResolver::new().with_key(&info.workload_id, identity.verifying_key());
//! let report = Verifier::new(&resolver).verify_json(&passport.to_json())?;
//! assert_eq!(report.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Providers
//!
//! | Provider | Workload id | Key | Feature |
//! |---|---|---|---|
//! | [`LocalEd25519`] | given | fresh Ed25519 per process (warns) | — |
//! | [`StaticIdentity`] | `KEST_WORKLOAD_ID` | seed, PKCS#8 PEM or JWK | — |
//! | [`MockIdentity`] | given | derived from the id (tests) | — |
//! | [`LazyIdentity`] | the inner provider's | the inner provider's | — |
//! | [`OidcIdentity`] | token `sub` (and `iss`) | configured or local | `oidc` to validate |
//! | `SpiffeIdentity` | SPIFFE id of the X.509-SVID | SVID key (ES256) | `spiffe` |
//! | `AwsKms` | STS caller ARN, or the Bedrock agent ARN | inside KMS (ES256) | `aws` |
//!
//! [`detect`] picks one from the environment; the variables are listed in [`mod@env`].
//! Private keys and tokens never appear in `Debug` output, errors or logs, and are
//! zeroized when dropped.

mod detect;
mod error;
#[cfg(feature = "jwks")]
mod fetch;
mod keyed;
mod lazy;
mod oidc;
#[cfg(feature = "oidc")]
mod oidc_jwks;
#[cfg(feature = "jwks")]
mod peer_keys;
mod provider;

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "spiffe")]
mod spiffe;

pub use detect::{Detected, IdentityChoice, configured, detect, make};
pub use error::IdentityError;
#[cfg(feature = "test-util")]
pub use keyed::MockIdentity;
pub use keyed::{LocalEd25519, StaticIdentity, write_private_jwk};
pub use lazy::LazyIdentity;
pub use oidc::{OidcConfig, OidcIdentity, TokenSource};
#[cfg(feature = "oidc")]
pub use oidc_jwks::JwtValidator;
#[cfg(feature = "jwks")]
pub use peer_keys::RemoteJwks;
pub use provider::{IdentityInfo, IdentityProvider};

#[cfg(feature = "aws")]
pub use aws::{AwsKms, load_aws_config};
#[cfg(feature = "spiffe")]
pub use spiffe::{DEFAULT_CONNECT_TIMEOUT, SpiffeIdentity, TrustBundleResolver};

use kest_passport::{EntryBuilder, Passport, SignedEntry};
use kest_trust::TrustEvaluator;

/// The environment variables the providers read.
pub mod env {
    pub use crate::detect::ENV_PROVIDER;
    pub use crate::keyed::{ENV_KEY_FILE, ENV_KEY_JWK, ENV_KEY_PEM, ENV_KEY_SEED, ENV_WORKLOAD_ID};
    pub use crate::oidc::{ENV_AUDIENCE, ENV_ISSUER, ENV_LEEWAY, ENV_TOKEN, ENV_TOKEN_PATH};

    /// The SPIFFE Workload API endpoint (`unix:///…` or `tcp://…`).
    pub const ENV_SPIFFE_ENDPOINT_SOCKET: &str = "SPIFFE_ENDPOINT_SOCKET";
    /// The KMS key that signs (`ECC_NIST_P256`, `SIGN_VERIFY`).
    pub const ENV_AWS_KMS_KEY_ID: &str = "KEST_AWS_KMS_KEY_ID";
    /// The Bedrock agent this process runs as.
    pub const ENV_AWS_BEDROCK_AGENT_ID: &str = "AWS_BEDROCK_AGENT_ID";
}

/// Builds the next entry of `passport` as `identity` (its workload id becomes the
/// entry's principal), signs it and appends it. Returns the new tip.
///
/// # Errors
/// [`IdentityError`] when the identity cannot describe itself or sign (the passport is
/// then unchanged), or [`IdentityError::Entry`] when the entry cannot be built.
pub async fn append<'p, P>(
    passport: &'p mut Passport,
    builder: EntryBuilder,
    identity: &P,
    evaluator: &dyn TrustEvaluator,
) -> Result<&'p SignedEntry, IdentityError>
where
    P: IdentityProvider + ?Sized,
{
    let info = identity.describe().await?;
    passport
        .append_with(
            builder.principal(info.workload_id.clone()),
            evaluator,
            |entry| identity.sign_entry_as(&info, entry),
        )
        .await
}
