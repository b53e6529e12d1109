//! Trust scores, origins, trust evaluators and taint sets: the labels a Kest entry carries
//! and the rules that carry them from parents to children.
//!
//! ```
//! use kest_trust::{OriginMap, TaintSet, TrustEvaluator, WeakestLink};
//!
//! let origins = OriginMap::new();
//! // A root fed by user input: trust 40, tainted `pii`.
//! let root_trust = WeakestLink.calculate(origins.score("user_input")?, &[]);
//! let root_taints = TaintSet::derive([], ["pii"], [] as [&str; 0]);
//! // Its child reads verified RAG data (90) and scrubs the PII.
//! let trust = WeakestLink.calculate(origins.score("verified_rag")?, &[root_trust]);
//! let taints = TaintSet::derive([&root_taints], [] as [&str; 0], ["pii"]);
//! assert_eq!((root_trust.get(), trust.get()), (40, 36));
//! assert!(taints.is_empty());
//! # Ok::<(), kest_trust::TrustError>(())
//! ```
//!
//! Both rules read an entry's **parents** only. A parent's labels already fold in all of
//! its history, so a sanitizer's override and a removed taint stay in effect downstream.
//! (The Python package reads every earlier entry instead, which brings removed taints back
//! one hop later and forgets overrides.)

mod error;
mod evaluator;
mod origin;
mod score;
mod taint;

pub use error::TrustError;
pub use evaluator::{TrustEvaluator, WeakestLink, Weighted, derive_trust};
pub use origin::{BUILT_IN_ORIGINS, DEFAULT_ORIGIN, OriginMap};
pub use score::TrustScore;
pub use taint::TaintSet;
