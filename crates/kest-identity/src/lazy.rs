//! A provider resolved on first use.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use kest_passport::{Entry, SignedEntry};
use tokio::sync::OnceCell;

use crate::{IdentityError, IdentityInfo, IdentityProvider};

type Resolve = dyn Fn() -> Pin<Box<dyn Future<Output = Result<Arc<dyn IdentityProvider>, IdentityError>> + Send>>
    + Send
    + Sync;

/// Resolves its provider the first time it is needed (the identity service may not be up
/// when the process starts), then keeps it. A failed resolution is not cached: the next
/// call tries again, and until one succeeds nothing is signed.
///
/// Unlike the Python package's lazy provider, the signature made by the resolved provider
/// is the one returned; nothing is re-signed or discarded.
pub struct LazyIdentity {
    resolve: Box<Resolve>,
    inner: OnceCell<Arc<dyn IdentityProvider>>,
}

impl fmt::Debug for LazyIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyIdentity")
            .field("inner", &self.inner.get())
            .finish_non_exhaustive()
    }
}

impl LazyIdentity {
    /// A provider made by `resolve` on first use.
    pub fn new<F, Fut>(resolve: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<dyn IdentityProvider>, IdentityError>> + Send + 'static,
    {
        Self {
            resolve: Box::new(move || Box::pin(resolve())),
            inner: OnceCell::new(),
        }
    }

    /// The resolved provider, resolving it now if needed.
    ///
    /// # Errors
    /// Whatever the resolution returns.
    pub async fn resolved(&self) -> Result<&Arc<dyn IdentityProvider>, IdentityError> {
        self.inner.get_or_try_init(|| (self.resolve)()).await
    }
}

#[async_trait]
impl IdentityProvider for LazyIdentity {
    fn name(&self) -> &str {
        "lazy"
    }

    async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
        let mut info = self.resolved().await?.describe().await?;
        info.provider = format!("lazy({})", info.provider);
        Ok(info)
    }

    async fn sign(&self, kid: &str, signing_input: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.resolved().await?.sign(kid, signing_input).await
    }

    async fn sign_entry(&self, entry: Entry) -> Result<SignedEntry, IdentityError> {
        self.resolved().await?.sign_entry(entry).await
    }
}
