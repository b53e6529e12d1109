//! Support for the code `#[kest::verified]` generates. Not a public API.

use kest_canon::Sha256Digest;
use serde::Serialize;
use serde_json::Value;

pub use crate::hook::hash_serialized;

/// Wraps a value to ask, at compile time, whether it serializes.
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// Chosen when the value serializes.
pub trait ViaSerialize {
    /// The value as JSON.
    fn kest_json(&self) -> Option<Value>;
}

impl<T: Serialize + ?Sized> ViaSerialize for &Probe<'_, T> {
    fn kest_json(&self) -> Option<Value> {
        serde_json::to_value(self.0).ok()
    }
}

/// Chosen when it does not.
pub trait ViaFallback {
    /// Nothing.
    fn kest_json(&self) -> Option<Value>;
}

impl<T: ?Sized> ViaFallback for Probe<'_, T> {
    fn kest_json(&self) -> Option<Value> {
        None
    }
}

/// The hash of the arguments' canonical JSON array, when every argument serialized.
#[must_use]
pub fn hash_arguments(arguments: Vec<Option<Value>>) -> Option<Sha256Digest> {
    let values: Option<Vec<Value>> = arguments.into_iter().collect();
    let bytes = kest_canon::canonicalize(&Value::Array(values?)).ok()?;
    Some(kest_canon::sha256(&bytes))
}

/// The hash of one value's canonical JSON.
#[must_use]
pub fn hash_json(value: Option<Value>) -> Option<Sha256Digest> {
    let bytes = kest_canon::canonicalize(&value?).ok()?;
    Some(kest_canon::sha256(&bytes))
}

/// The hook of a call site, made on first use and kept.
pub struct Site {
    cell: std::sync::OnceLock<(usize, crate::Protected)>,
}

impl Default for Site {
    fn default() -> Self {
        Self::new()
    }
}

impl Site {
    /// An empty site.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            cell: std::sync::OnceLock::new(),
        }
    }

    /// The hook for `call` on the installed runtime. Made once; made again only if a
    /// different runtime was installed since.
    ///
    /// # Errors
    /// As [`crate::protect`].
    pub fn hook(
        &self,
        call: impl FnOnce() -> crate::Call,
    ) -> Result<crate::Protected, crate::KestError> {
        let kest = crate::Kest::installed().ok_or_else(|| crate::KestError::NotConfigured {
            what: "no Kest runtime is installed: build one (Kest::builder, Kest::from_env) and call .install()".into(),
        })?;
        let id = std::sync::Arc::as_ptr(&kest.inner) as usize;
        if let Some((cached, hook)) = self.cell.get() {
            if *cached == id {
                return Ok(hook.clone());
            }
            return kest.protect(call());
        }
        let hook = kest.protect(call())?;
        let _ = self.cell.set((id, hook.clone()));
        Ok(hook)
    }
}
