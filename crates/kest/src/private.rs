//! Support for the code `#[kest::verified]` generates. Not a public API.

use kest_canon::Sha256Digest;
use serde::Serialize;
use serde_json::Value;

use crate::Values;
pub use crate::hook::hash_serialized;

/// A value that may give a text: strings, and options of them.
pub trait MaybeText {
    /// The text, if any.
    fn into_text(self) -> Option<String>;
}

impl MaybeText for String {
    fn into_text(self) -> Option<String> {
        Some(self)
    }
}

impl MaybeText for &str {
    fn into_text(self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl MaybeText for &String {
    fn into_text(self) -> Option<String> {
        Some(self.clone())
    }
}

impl<T: MaybeText> MaybeText for Option<T> {
    fn into_text(self) -> Option<String> {
        self.and_then(MaybeText::into_text)
    }
}

macro_rules! setter {
    ($name:ident, $method:ident) => {
        /// Sets the value when there is one.
        pub fn $name(values: Values, value: impl MaybeText) -> Values {
            match value.into_text() {
                Some(text) => values.$method(text),
                None => values,
            }
        }
    };
}

setter!(set_user, user);
setter!(set_agent, agent);
setter!(set_task, task);
setter!(set_resource_id, resource_id);

/// Sets the input hash when the arguments serialized.
pub fn with_input_hash(values: Values, hash: Option<Sha256Digest>) -> Values {
    match hash {
        Some(hash) => values.input_hash(hash),
        None => values,
    }
}

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
        let kest = crate::Kest::installed().ok_or(crate::KestError::NotInstalled)?;
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

/// The hook's metric recording on its own, for the benchmark that holds it to its budget
/// (`kest.metrics/*` in `benches/hook.rs`). Not a public API.
#[derive(Debug, Clone)]
pub struct MetricsProbe(crate::metrics::CallAttributes);

impl MetricsProbe {
    /// The attributes of a call site `operation` with `policy`.
    #[must_use]
    pub fn new(operation: &str, policy: &str) -> Self {
        Self(crate::metrics::CallAttributes::new(
            operation,
            &[policy.to_owned()],
        ))
    }

    /// What an allowed call records: a decision, the hook's time, the trust, the depth.
    pub fn allowed(&self) {
        crate::metrics::allowed(
            &self.0,
            "cedar",
            std::time::Duration::from_micros(30),
            90,
            12,
        );
    }
}
