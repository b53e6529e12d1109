//! Failing closed while the signer is down.
//!
//! The hook signs an entry after its operation has run (the entry records the output's
//! hash and follows whatever the operation appended). A signer that fails then (a KMS
//! that stopped answering) leaves that run without an entry: the result is withheld
//! ([`crate::KestError::Record`]), but the operation has happened. The gate keeps that to
//! the calls already running when the signer failed: once a signature fails, no call
//! runs until a probe signature goes through, and while one probe is under way the
//! other calls are refused at once rather than queued behind it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use kest_identity::{IdentityInfo, IdentityProvider};

use crate::KestError;

/// What a probe signs. It has no `.`, so it is not a JWS signing input, and its
/// signature can never stand in for an entry's.
const PROBE: &[u8] = b"kest signer probe";

/// The state of one identity's signer, shared by every call that signs with it.
#[derive(Debug, Default)]
pub(crate) struct SignerGate {
    /// The last signature (or probe) failed.
    failing: AtomicBool,
    /// A probe is under way.
    probing: AtomicBool,
    /// Why the last one failed.
    reason: Mutex<String>,
}

/// Clears `probing` however the probe ends, cancelled included.
struct Probing<'a>(&'a AtomicBool);

impl Drop for Probing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl SignerGate {
    /// Lets a call run: at once while the signer is healthy; after a probe signature
    /// succeeds when the last one failed.
    ///
    /// # Errors
    /// [`KestError::SignerUnavailable`] when the probe fails, or another call's probe is
    /// under way.
    pub(crate) async fn admit(
        &self,
        identity: &dyn IdentityProvider,
        info: &IdentityInfo,
    ) -> Result<(), KestError> {
        if !self.failing.load(Ordering::Acquire) {
            return Ok(());
        }
        let unavailable = |reason: String| KestError::SignerUnavailable {
            workload: kest_canon::escape_untrusted(&info.workload_id, 200),
            reason,
        };
        if self.probing.swap(true, Ordering::AcqRel) {
            return Err(unavailable(format!(
                "{}; another call is probing it",
                self.reason()
            )));
        }
        let _probing = Probing(&self.probing);
        match identity.sign(&info.kid, PROBE).await {
            Ok(_) => {
                self.failing.store(false, Ordering::Release);
                tracing::info!(
                    workload = %info.workload_id,
                    "kest: the signer answers again; protected calls run again"
                );
                Ok(())
            }
            Err(error) => {
                let reason = error.to_string();
                self.set_reason(&reason);
                Err(unavailable(reason))
            }
        }
    }

    /// Records a signature that failed: calls stop running until a probe succeeds.
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        self.set_reason(&error.to_string());
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::error!(
                error = %error,
                "kest: an entry could not be signed; protected calls will not run until the signer answers a probe"
            );
        }
    }

    /// Records a signature that succeeded.
    pub(crate) fn succeeded(&self) {
        // Only write when it changes: the healthy path stays a shared read.
        if self.failing.load(Ordering::Acquire) {
            self.failing.store(false, Ordering::Release);
        }
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .map(|reason| reason.clone())
            .unwrap_or_default()
    }

    fn set_reason(&self, reason: &str) {
        if let Ok(mut slot) = self.reason.lock() {
            reason.clone_into(&mut slot);
        }
    }
}
